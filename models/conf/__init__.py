"""Hydra configuration groups for training, shipped inside the package."""
