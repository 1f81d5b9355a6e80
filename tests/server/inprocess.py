"""An in-process sequencer for tests that drive :class:`tlog.sequencer.Sequencer`
directly: a real log identity (Ed25519 key, real checkpoint notes), so that
the sequencer's checks of what storage holds (SPEC §10 U1) run as in the
server."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog.identity import LogIdentity
from tlog.sequencer import Sequencer
from tlog.storage import Storage
from tlog.trustedhead import TrustedHead


def make_identity(origin: str = "tlog.test/in-process") -> LogIdentity:
    return LogIdentity(origin, 1, ed25519.Ed25519PrivateKey.generate())


def make_sequencer(storage: Storage, identity: LogIdentity | None = None,
                   clock=lambda: 1000.0, **kwargs) -> Sequencer:
    """A sequencer over ``storage`` signing with ``identity`` (a new one by
    default), with its own TrustedHead; ``kwargs`` go to Sequencer."""
    identity = identity or make_identity()
    heads = TrustedHead(identity.verifiers(), identity.origin)
    return Sequencer(storage, identity.sign_checkpoint, clock, heads,
                     seal_key=identity.seal_key, **kwargs)
