# Two entry points for a fresh Debian machine: `make run` and `make test`.
# Both install what they need (Debian packages when run as root, then a venv).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TF_FLAVOUR ?= cpu
APT_PACKAGES := libportaudio2 libsndfile1 jackd2 puredata-core fluidsynth \
                timgm6mb-soundfont fluid-soundfont-gm liblo-tools sox

.PHONY: setup system-packages run test bench clean

system-packages:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	elif command -v sudo >/dev/null; then \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	else echo "not root and no sudo: install these Debian packages yourself: $(APT_PACKAGES)"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(TF_FLAVOUR),test]'
	touch $@

setup: system-packages $(VENV)/.installed

run: setup
	@if ! $(PY) -c "import gansynth_live.live" 2>/dev/null; then \
	  echo "gansynth-live: the live server is not part of this version yet (issue 5)."; \
	  echo "What works now: the Python API, gansynth-make-dataset, gansynth-train, gansynth-postprocess."; \
	  exit 1; fi
	$(PY) -m gansynth_live.live $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/generate_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
