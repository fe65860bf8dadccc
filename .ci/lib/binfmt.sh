# shellcheck shell=bash
# The host's binfmt_misc registry, for the CI gate's stages that must change
# it and put it back (the doctor stage, .ci/lib/swarm.sh):
#
#   source .ci/lib/binfmt.sh
#   qus_binfmt_save DIR && qus_binfmt_flush && ... ; qus_binfmt_restore DIR
#
# Only qemu-* entries are ever removed or registered. Functions only:
# sourcing changes nothing.

QUS_BINFMT=${QUS_BINFMT:-/proc/sys/fs/binfmt_misc}

# Every binfmt_misc entry with its content, as text (what .ci/run compares).
qus_binfmt_state() {
    local f
    for f in "$QUS_BINFMT"/*; do
        case "$(basename "$f")" in register | status) ;; *)
            printf '%s\n' "$(basename "$f")"
            cat "$f"
            ;;
        esac
    done
}

# The qemu-* entry names, one a line.
qus_binfmt_qemu_entries() {
    local f
    for f in "$QUS_BINFMT"/qemu-*; do
        [ -e "$f" ] && basename "$f"
    done
    return 0
}

# Removes every qemu-* entry (never another one; never `status`).
qus_binfmt_flush() {
    local name
    for name in $(qus_binfmt_qemu_entries); do
        echo -1 >"$QUS_BINFMT/$name" || return 1
    done
}

# The register line that recreates the entry whose readback is in FILE, as
# NAME: `:name:type:offset:magic:mask:interpreter:flags`, every magic and
# mask byte as \xHH.
_qus_binfmt_line() {
    local name=$1 file=$2 key val type=M offset=0 magic='' mask='' interp='' flags=''
    while read -r key val; do
        case $key in
        interpreter) interp=$val ;;
        flags:) flags=$val ;;
        offset) offset=$val ;;
        magic) magic=$val ;;
        mask) mask=$val ;;
        extension) type=E magic=${val#.} offset='' ;;
        esac
    done <"$file"
    if [ "$type" = M ]; then
        magic=$(printf '%s' "$magic" | sed 's/../\\x&/g')
        mask=$(printf '%s' "$mask" | sed 's/../\\x&/g')
    fi
    printf ':%s:%s:%s:%s:%s:%s:%s' "$name" "$type" "$offset" "$magic" "$mask" "$interp" "$flags"
}

# Saves every qemu-* entry's readback into DIR (made), and checks that each
# can be registered again from this host: an `F` entry's interpreter is
# opened at registration, so it must exist here. Fails, naming the entry,
# before anything is changed.
qus_binfmt_save() {
    local dir=$1 name interp
    mkdir -p "$dir" || return 1
    for name in $(qus_binfmt_qemu_entries); do
        cat "$QUS_BINFMT/$name" >"$dir/$name" || return 1
        interp=$(sed -n 's/^interpreter //p' "$dir/$name")
        if grep -q '^flags: .*F' "$dir/$name" && [ ! -e "$interp" ]; then
            echo "error: cannot save \`$name\`: its interpreter \`$interp\` is not on this host, so it could not be registered again with \`F\`" >&2
            return 1
        fi
    done
}

# Removes every qemu-* entry, then registers the entries saved in DIR again,
# disabled where they were.
qus_binfmt_restore() {
    local dir=$1 file name status=0
    qus_binfmt_flush || status=1
    for file in "$dir"/qemu-*; do
        [ -e "$file" ] || continue
        name=$(basename "$file")
        if ! _qus_binfmt_line "$name" "$file" >"$QUS_BINFMT/register"; then
            echo "error: failed to register \`$name\` again" >&2
            status=1
            continue
        fi
        if [ "$(head -n 1 "$file")" = disabled ]; then
            echo 0 >"$QUS_BINFMT/$name" || status=1
        fi
    done
    return "$status"
}
