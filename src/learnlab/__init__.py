"""learnlab: the science of how neural networks learn, as runnable, checked experiments."""

__version__ = "0.1.0"

from learnlab.claims import Claim  # noqa: E402
from learnlab.config import ConfigError, apply_overrides, validate  # noqa: E402
from learnlab.errors import LearnlabError, StoreError  # noqa: E402

__all__ = ["Claim", "ConfigError", "LearnlabError", "StoreError", "__version__", "apply_overrides", "validate"]
