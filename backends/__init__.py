"""Adapters that make diaggauss native in each array library.

Installed as ``diaggauss.backends``. Each module is imported only when an
array of its library is first seen (or when the user imports it):

- :mod:`diaggauss.backends.numpy`: ``numpy.random.Generator`` noise, SciPy's
  special functions when installed, conversion to and from
  ``scipy.stats.multivariate_normal``.
- :mod:`diaggauss.backends.torch`: ``torch.Generator`` noise, and a real
  ``torch.distributions.Distribution``.
- :mod:`diaggauss.backends.jax`: ``jax.random`` keys and pytree registration.
"""
