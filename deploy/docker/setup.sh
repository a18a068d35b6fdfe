#!/bin/sh
# Runs as root while the image is built (bentofile `docker.setup_script`), after the `bentoml`
# user exists. Creates the folders the service writes, owned by that user: a Docker named volume
# mounted on one of them starts out with this owner, where a path new to the image would be
# root's and unwritable by the service.
set -eu
mkdir -p /home/bentoml/data/rag-index /home/bentoml/data/jobs /home/bentoml/data/corpus /home/bentoml/.cache/huggingface
chown -R bentoml:bentoml /home/bentoml/data /home/bentoml/.cache
