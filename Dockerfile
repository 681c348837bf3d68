# clinie_nemo inside NVIDIA's NeMo Framework container (for slurm/*.sh with CONTAINER_IMAGE, via pyxis).
#
# Engine `bridge` (Megatron-Bridge on megatron-core + Transformer Engine): a NeMo Framework 26.x image,
# the default below. Engine `nemo` (NeMo 1.x examples/nlp/.../megatron_gpt_finetuning.py, .nemo
# checkpoints such as GatorTronGPT, the study's own path) needs the older tag family
# nvcr.io/nvidia/nemo:24.xx-25.04, e.g.  docker build --build-arg NEMO_TAG=25.04 -t clinie-nemo:nemo1 .
# Engine `local` runs in either.
#
#   docker build -t clinie-nemo:26.04 .
#   enroot import -o clinie-nemo.sqsh dockerd://clinie-nemo:26.04   # a squashfs image pyxis can start
#
# The container's torch, Transformer Engine, megatron-core, Megatron-Bridge and NeMo are never replaced:
# clinie_nemo installs with --no-deps, then only the missing CPU-side requirements, under a constraints
# file that pins every package the image already has to its installed version.
ARG NEMO_TAG=26.04
FROM nvcr.io/nvidia/nemo:${NEMO_TAG}

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

ENV CLINIE_NEMO_HOME=/opt/clinie_nemo
