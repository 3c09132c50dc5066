"""Stages: each a function from an input artifact folder to a new artifact folder (see edgeft.artifact)."""
