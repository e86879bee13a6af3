# Source on the GPU machine after the parts have arrived (bench/README.md): vLLM's bundle first,
# then the image's own packages, then NeMo's stack filling only what the image lacks.
source /tmp/site/env.sh
image_site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
export PYTHONPATH="/tmp/site:/tmp/nemo-first:$image_site:/tmp/nemo-site:$PWD"
export PATH="/tmp/nemo-site/bin:$PATH"
