"""Running trained models live: the streaming engine."""
