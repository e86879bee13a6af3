#!/usr/bin/env bash
# Wheels of NeMo's codec stack for the GPU machine's CPython 3.12, split into parts of at most
# 56 MB (one device call carries one). Pure-Python packages published only as sdists are built here.
#
#   bench/gpu/stage_nemo.sh [DEST]       (DEST defaults to .gpu; parts land in DEST/n0, DEST/n1, ...)
#
# On the device: `bash DEST/nK/recv.sh` for each part; once all have arrived they are installed into
# /tmp/nemo-site, which bench/gpu/env.sh puts on sys.path after the image's own packages (those marked
# "# first" in requirements.txt into /tmp/nemo-first, before them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-.gpu}"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
plat=()
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 \
         manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 linux_x86_64 any; do plat+=(--platform "$p"); done
grep -v '^#' "$here/requirements.txt" | sed 's/ *#.*//' | while read -r req; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d "$wheels" "$req" >/dev/null 2>&1 \
  || python3 -m pip wheel -q --no-deps -w "$wheels" "$req" >/dev/null
done
rm -rf "$dest"/n*
n=0; size=0; max=56000000
# A wheel larger than a part (Ray's, 79 MB) travels in pieces, put together again on the device.
for w in "$wheels"/*.whl; do
  if [ "$(stat -c %s "$w")" -gt $max ]; then split -b $max -d -a 2 "$w" "$w.part"; rm "$w"; fi
done
mkdir -p "$dest/n0"
for w in $(ls -S "$wheels"); do
  s=$(stat -c %s "$wheels/$w")
  if [ $((size + s)) -gt $max ] && [ $size -gt 0 ]; then n=$((n+1)); size=0; mkdir -p "$dest/n$n"; fi
  mv "$wheels/$w" "$dest/n$n/"; size=$((size + s))
done
total=$((n+1))
# Packages marked "# first" go before the image's own (bench/gpu/env.sh orders the paths).
first=$(grep '# *first' "$here/requirements.txt" | cut -d= -f1 | tr '-' '_' | paste -sd'|')
for d in "$dest"/n*; do
  cat > "$d/recv.sh" <<RECV
#!/usr/bin/env bash
set -euo pipefail
mkdir -p /tmp/nemo-wheels && cp "\$(dirname "\$0")"/*.whl* /tmp/nemo-wheels/
touch "/tmp/nemo-wheels/.got-\$(basename "\$(dirname "\$0")")"
have=\$(ls -a /tmp/nemo-wheels | grep -c '^\.got-')
if [ "\$have" -lt $total ]; then echo "nemo part parked (\$have of $total)"; exit 0; fi
if [ ! -f /tmp/nemo-site/.complete ]; then
  for p in /tmp/nemo-wheels/*.whl.part00; do
    [ -e "\$p" ] || continue
    w="\${p%.part00}"; cat "\$w".part* > "\$w"; rm "\$w".part*
  done
  first=\$(ls /tmp/nemo-wheels/*.whl | grep -E "/($first)-" || true)
  [ -z "\$first" ] || python3 -m pip install -q --no-deps --no-index --target /tmp/nemo-first \$first
  python3 -m pip install -q --no-deps --no-index --target /tmp/nemo-site \$(ls /tmp/nemo-wheels/*.whl | grep -vE "/($first)-")
  touch /tmp/nemo-site/.complete
fi
echo "nemo ready in /tmp/nemo-site"
RECV
  chmod +x "$d/recv.sh"
done
echo "$total NeMo parts in $dest ($(du -sh "$dest" | cut -f1) with the vLLM bundle)"
