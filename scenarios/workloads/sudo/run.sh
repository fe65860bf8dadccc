#!/bin/sh
# sudo under emulation: as root, allow `nobody` to run anything without a
# password, drop to `nobody` (setpriv: no setuid involved), then let the
# setuid-root sudo, an emulated binary, raise it again. sudo needs euid 0
# on start, which it gets only if binfmt_misc computes the credentials from
# sudo itself (flag C, `--credential yes`), not from the interpreter.
set -eu
umask 022
echo "machine: $(uname -m)"
printf 'nobody ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/qus
chmod 0440 /etc/sudoers.d/qus
setpriv --reuid=nobody --regid=nogroup --clear-groups -- /bin/sh -eu -c '
    echo "as: $(id -un) ($(id -u))"
    echo "sudo: $(sudo -n id -un) ($(sudo -n id -u))"
    echo "sudo -u daemon: $(sudo -n -u daemon id -un)"
    echo "sudo -g adm: $(sudo -n -g adm id -gn)"
    echo "sudo sh: $(sudo -n sh -c "echo \$((6 * 7)) > /root/answer && cat /root/answer")"
    echo "back as: $(id -un)"
'
