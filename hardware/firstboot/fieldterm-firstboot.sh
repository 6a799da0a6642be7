#!/bin/sh
# fieldterm first boot: install the bundle that 'fieldterm provision add-terminal --sd-card'
# wrote to the SD card's boot partition into /etc/fieldterm, then remove it from the card.
#
# - verifies every file against MANIFEST.sha256 before touching /etc/fieldterm;
# - installs as a whole (staged beside /etc/fieldterm, then renamed): never half-installed;
# - keys (*.key) root:fieldterm 0640, everything else root:fieldterm 0644, directory 0750;
# - keeps keys already in /etc/fieldterm that the bundle does not carry (a key made on the
#   device for the --csr path);
# - deletes the bundle from the (FAT, world-readable) boot partition afterwards.
# Environment overrides exist for tests: FIELDTERM_BOOT_DIRS, FIELDTERM_ETC, FIELDTERM_USER,
# FIELDTERM_GROUP, FIELDTERM_STATE_DIR.
set -eu

BOOT_DIRS="${FIELDTERM_BOOT_DIRS:-/boot/firmware /boot}"
ETC="${FIELDTERM_ETC:-/etc/fieldterm}"
RUN_USER="${FIELDTERM_USER:-fieldterm}"
RUN_GROUP="${FIELDTERM_GROUP:-fieldterm}"
STATE_DIR="${FIELDTERM_STATE_DIR:-/var/lib/fieldterm}"
NAME=fieldterm-bundle

log() { echo "fieldterm-firstboot: $*" >&2; }

SRC=""
for d in $BOOT_DIRS; do
    if [ -d "$d/$NAME" ]; then SRC="$d/$NAME"; break; fi
done
if [ -z "$SRC" ]; then
    log "no $NAME on the boot partition: nothing to do"
    exit 0
fi
if [ ! -f "$SRC/MANIFEST.sha256" ]; then
    log "$SRC has no MANIFEST.sha256: not a fieldterm bundle; write the card again"
    exit 1
fi

# Only plain file names: a manifest may not point outside the bundle.
if awk '{ print $2 }' "$SRC/MANIFEST.sha256" | grep -qv '^[A-Za-z0-9][A-Za-z0-9._-]*$'; then
    log "MANIFEST.sha256 names a file outside the bundle: refusing; write the card again"
    exit 1
fi
if ! (cd "$SRC" && sha256sum --check --quiet --strict MANIFEST.sha256); then
    log "bundle on $SRC is damaged (checksum mismatch): left in place; write the card again"
    exit 1
fi

if ! getent group "$RUN_GROUP" >/dev/null; then
    groupadd --system "$RUN_GROUP"
fi
if ! getent passwd "$RUN_USER" >/dev/null; then
    useradd --system --gid "$RUN_GROUP" --home-dir "$STATE_DIR" --shell /usr/sbin/nologin "$RUN_USER"
fi

PARENT=$(dirname "$ETC")
mkdir -p "$PARENT"
STAGE=$(mktemp -d "$ETC.new.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# Keys made on the device (CSR path) stay; the bundle wins for every file it carries.
if [ -d "$ETC" ]; then
    for f in "$ETC"/*.key; do
        if [ -f "$f" ]; then cp -p "$f" "$STAGE/"; fi
    done
fi
awk '{ print $2 }' "$SRC/MANIFEST.sha256" | while read -r f; do
    cp "$SRC/$f" "$STAGE/$f"
done
cp "$SRC/MANIFEST.sha256" "$STAGE/"

for f in "$STAGE"/*; do
    case "$f" in
        *.key) chmod 0640 "$f" ;;
        *) chmod 0644 "$f" ;;
    esac
    chown "root:$RUN_GROUP" "$f"
done
chown "root:$RUN_GROUP" "$STAGE"
chmod 0750 "$STAGE"
sync

if [ -e "$ETC" ]; then
    mv "$ETC" "$ETC.old.$$"
fi
mv "$STAGE" "$ETC"
trap - EXIT
rm -rf "$ETC.old.$$"
sync

mkdir -p "$STATE_DIR"
chown "$RUN_USER:$RUN_GROUP" "$STATE_DIR"
chmod 0750 "$STATE_DIR"

for need in terminal.toml client.crt client.key identity.key ca.crt; do
    if [ ! -f "$ETC/$need" ]; then
        log "warning: $ETC/$need is missing (a --csr bundle needs the device's key there)"
    fi
done

rm -rf "$SRC"
sync
log "installed $(awk -F'"' '/^id = /{ print $2; exit }' "$ETC/terminal.toml") into $ETC; bundle removed from $SRC"
