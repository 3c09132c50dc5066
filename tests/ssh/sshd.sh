#!/usr/bin/env bash
# A real OpenSSH server on loopback for the --device ssh:// tests: bash tests/ssh/sshd.sh DIR PORT
# Installs openssh-server with apt-get if it is missing (root), makes a host key and a client key in DIR, and runs
# sshd in the foreground (the test owns the process) on 127.0.0.1:PORT, accepting only DIR/client_key.
set -euo pipefail
dir=$1 port=$2
if [[ ! -x /usr/sbin/sshd ]]; then
    { apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1; }; } ||
      { echo "sshd.sh: could not install openssh-server with apt-get" >&2; exit 1; }
fi
mkdir -p "$dir" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" <<<y >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" <<<y >/dev/null
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
CFG
exec /usr/sbin/sshd -D -e -f "$dir/sshd_config"
