"""irflow.sim: a stateful simulated Azure tenant that speaks the ARM wire format.

The model (:class:`Tenant`) is served in-process through ``responses`` (:func:`irflow.sim.mock.mount`) or
over HTTPS (:class:`irflow.sim.server.SimServer`, ``irflow sim serve``). Tests, ``irflow demo`` and drills
use it; product code never imports it.
"""

from irflow.sim.errors import ArmError
from irflow.sim.journal import Journal, JournalEntry
from irflow.sim.mock import mount
from irflow.sim.models import FaultSettings, ResourceGroup, Subscription, Tenant
from irflow.sim.scenario import load_scenario, packaged_scenarios
from irflow.sim.server import SimServer
from irflow.sim.storage.blob import BlobContainer, BlobService
from irflow.sim.storage.models import StorageAccount
from irflow.sim.throttle import BucketLimit, ThrottleLimits

__all__ = [
    "ArmError",
    "BlobContainer",
    "BlobService",
    "BucketLimit",
    "FaultSettings",
    "Journal",
    "JournalEntry",
    "ResourceGroup",
    "SimServer",
    "StorageAccount",
    "Subscription",
    "Tenant",
    "ThrottleLimits",
    "load_scenario",
    "mount",
    "packaged_scenarios",
]
