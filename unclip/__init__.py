"""unclip: two-stage text-to-image generation in the manner of unCLIP (DALL-E 2)."""

__version__ = "0.1.0"

from unclip.resolvers import register as _register_resolvers

_register_resolvers()
