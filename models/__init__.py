"""Learning: the diffusion denoiser, noise scheduler, baselines, training and evaluation.

This room arrives with the model issue; it already installs as ``imucap.models``.
"""
