"""Wire contract of WalletActor (id = customer id), generated from its spec, `model.WALLET`.

For the Dapr SDK's ActorProxy: `ActorProxy.create("WalletActor", id, WalletActorInterface)`.
The methods, their payloads and the events they record are listed in the README
("Actors"); the one declaration is the spec's `commands` table.
"""

from __future__ import annotations

from actors.toolkit.interface import actor_interface
from actors.wallet.model import WALLET

WalletActorInterface = actor_interface(WALLET)
