"""`make bench`: each performance figure beside the obvious alternative, as a ratio from one run."""
