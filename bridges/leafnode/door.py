"""The leaf node door: one solicited link per configured remote (``leafnodes {
remotes: [...] }``), each bound to one local account so tenants stay apart upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jetport.bridges.leafnode.link import LeafLink, loop_subject
from jetport.core import nkeys
from jetport.core.log import log

if TYPE_CHECKING:
    from jetport.core.config.options import Options
    from jetport.core.hub import Hub


class LeafNodeDoor:
    name = "leafnode"
    #: After the client doors: local clients can connect while the links come up.
    order = 5

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.links: list[LeafLink] = []

    @classmethod
    def wanted(cls, options: Options) -> bool:
        leaf = options.leafnode
        return leaf is not None and bool(leaf.remotes)

    async def start(self) -> None:
        leaf = self.hub.options.leafnode
        assert leaf is not None
        loops: dict[str, bytes] = {}  # each account's one loop-detection subject
        for remote in leaf.remotes:
            account = self.hub.accounts.get(remote.account)
            if account is None:
                raise ValueError(f"leafnode remote: no account {remote.account!r}")
            jwt, seed = None, remote.nkey
            if remote.credentials:
                with open(remote.credentials) as f:
                    jwt, seed = nkeys.read_creds(f.read())
            link = LeafLink(self.hub, account, remote.urls, reconnect=leaf.reconnect,
                            deny_imports=remote.deny_imports,
                            deny_exports=remote.deny_exports,
                            randomize=not remote.no_randomize, nkey=seed, jwt=jwt,
                            tls=remote.tls,
                            lds=loops.setdefault(account.name, loop_subject()))
            self.links.append(link)
            link.start()
        log.info("Leafnode remotes: %d", len(self.links))

    async def lame_duck(self, duration: float, grace: float) -> None:
        """Links close at the final shutdown, as nats-server's do."""

    async def stop(self) -> None:
        for link in self.links:
            await link.stop()
