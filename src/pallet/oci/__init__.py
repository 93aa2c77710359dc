"""OCI data model: pure data, no I/O."""

from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform, host_platform

__all__ = ["Descriptor", "Digest", "Platform", "host_platform"]
