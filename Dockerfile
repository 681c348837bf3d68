# clinie_nemo inside NVIDIA's NeMo Framework container (for slurm/*.sh with CONTAINER_IMAGE, via pyxis).
#
# Engine `bridge` (Megatron-Bridge on megatron-core + Transformer Engine) supports megatron-bridge 0.6.x
# only (>=0.6.0,<0.7.0: 0.6.0 is the first that loads an HF folder as the pretrained checkpoint). The
# NeMo Framework image with Bridge 0.6.0 is 26.08 (Megatron-Bridge r0.6.0 docs/versions1.json:
# "0.6.0 (latest) · 26.08"; 26.04 ships 0.4.0 and 26.06 ships 0.5.0, docs/releases/software-versions.md),
# the default below; the build fails when the image's megatron-bridge is outside that window. Engine
# `nemo` (NeMo 1.x examples/nlp/.../megatron_gpt_finetuning.py, .nemo checkpoints such as GatorTronGPT,
# the study's own path) needs an image with nemo_toolkit 2.2.1-2.4.x (2.5.0 removed the adapter mixins the
# scripts call; the engine checks the version at run time), built without the Bridge check:  docker build --build-arg NEMO_TAG=25.04 --build-arg ENGINE=nemo -t clinie-nemo:nemo1 .
# Engine `local` runs in either.
#
#   docker build -t clinie-nemo:26.08 .
#   enroot import -o clinie-nemo.sqsh dockerd://clinie-nemo:26.08   # a squashfs image pyxis can start
#
# The container's torch, Transformer Engine, megatron-core, Megatron-Bridge and NeMo are never replaced:
# clinie_nemo installs with --no-deps, then only the missing CPU-side requirements, under a constraints
# file that pins every package the image already has to its installed version.
ARG NEMO_TAG=26.08
FROM nvcr.io/nvidia/nemo:${NEMO_TAG}
ARG ENGINE=bridge

WORKDIR /opt/clinie_nemo
COPY pyproject.toml setup.py README.md requirements.txt ./
COPY clinie_nemo ./clinie_nemo
COPY nemo_configs ./nemo_configs
COPY slurm ./slurm
COPY tools ./tools

RUN python -m pip list --format=freeze > /tmp/image-constraints.txt \
 && python -m pip install --no-cache-dir --no-deps . \
 && python -m pip install --no-cache-dir -c /tmp/image-constraints.txt -r requirements.txt \
 && python -m pip list --format=freeze | grep -iE '^(torch|transformer[-_]engine|megatron[-_]core|nemo[-_]toolkit)==' \
      > /tmp/after.txt \
 && grep -iE '^(torch|transformer[-_]engine|megatron[-_]core|nemo[-_]toolkit)==' /tmp/image-constraints.txt \
      | diff - /tmp/after.txt \
 && python -m clinie_nemo --version

# engine bridge: fail the build unless the image's megatron-bridge is a supported release (0.6.x)
RUN if [ "$ENGINE" = bridge ]; then python -m clinie_nemo.engines.bridge check-version; fi

ENV CLINIE_NEMO_HOME=/opt/clinie_nemo
