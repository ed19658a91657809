"""vocagan: speech-driven 3D facial animation on VOCASET (RNN, Transformer, Transformer+VAE, Transformer+GAN)."""

__version__ = "0.1.0"
