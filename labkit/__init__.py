"""labkit: the SAR HPC Lab's package (SAOCOM SLC stack -> tiles -> temporal statistics).

The submodules are imported on demand, so ``import labkit`` stays light.
"""

from labkit.errors import LabError

__all__ = ["LabError", "__version__"]
__version__ = "0.1.0"
