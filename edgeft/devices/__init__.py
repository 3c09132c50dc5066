"""Where `edgeft bench` runs: here (`local`), on a machine reached over SSH (`ssh://user@host[:port]`, devices.ssh),
or on the emulated aarch64 runtime (`qemu-arm64`, devices.qemu: predictions and accuracy only, never latency)."""

from __future__ import annotations

import re

from edgeft.errors import BadInput
from edgeft.devices.ssh import SshDevice


def parse_device(spec: str, flag: str = "--device") -> str | SshDevice:
    """'local', 'qemu-arm64' or an SshDevice; anything else is BadInput with the accepted forms."""
    if spec in ("local", "qemu-arm64"):
        return spec
    match = re.fullmatch(r"ssh://(?:([^@/:]+)@)?([^@/:]+)(?::(\d+))?/?", spec)
    if not match:
        raise BadInput(f"{flag} '{spec}' is not local, qemu-arm64 or ssh://user@host[:port]")
    user, host, port = match.groups()
    return SshDevice(user, host, int(port or 22))
