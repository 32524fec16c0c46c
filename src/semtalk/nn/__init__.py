"""Plain PyTorch building blocks: conv encoders/decoders, the residual quantizer, the RVQ-VAE, generators."""
