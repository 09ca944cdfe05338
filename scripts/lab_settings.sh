#!/usr/bin/env bash
# Install the course's JupyterLab settings (jupyter/overrides.json: no "official Jupyter news?"
# popup, no update check) where JupyterLab reads them as defaults:
#   <JupyterLab app dir>/settings/overrides.d/ftcourse.json
# The app dir is $JUPYTERLAB_DIR, else <python's sys.prefix>/share/jupyter/lab. A learner's own
# overrides.json next to it is left alone, and so are settings changed in JupyterLab's editor.
# Running it again changes nothing.
# usage: scripts/lab_settings.sh [PYTHON]   (default: python3; make lab passes .venv/bin/python)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
src="$root/jupyter/overrides.json"
app_dir=$("$py" -c 'import os, sys; print(os.environ.get("JUPYTERLAB_DIR") or os.path.join(sys.prefix, "share", "jupyter", "lab"))')
dest="$app_dir/settings/overrides.d/ftcourse.json"
if cmp -s "$src" "$dest"; then
  exit 0
fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp "$dest.XXXXXX")
cp "$src" "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$dest"
echo "JupyterLab settings installed: $dest (news and update checks off)"
