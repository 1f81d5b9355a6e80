"""tlog_client: verification core and client for the tlog transparency log.

Everything a verifier needs (RFC 6962 hashing and proofs, compact ranges,
checkpoints and signed notes, tile geometry, Rekor v1 entry formats) and
nothing a server needs. See SPEC §2.
"""

__version__ = "0.1.0"
