"""Models: backbones (`backbones`), source training and embedding extraction (`training`, the only Lightning
code), and the transfer heads fitted on frozen embeddings (`heads`, with its batched solver `head_solver`).
A new backbone or head goes here, with a line in its name -> constructor table.

May import `data`, `estimators` and the edges; never a stage or the analysis."""
