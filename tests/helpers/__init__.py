"""Helpers the tests share (lightning-hydra-template's `tests/helpers`): paths, the composed config, data files."""
