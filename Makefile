# Two entry points for a fresh Debian machine: `make run` and `make test`.
# Both install what they need (Debian packages when run as root, then a venv).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TF_FLAVOUR ?= cpu
APT_PACKAGES := libportaudio2 libsndfile1 jackd2 puredata-core fluidsynth \
                timgm6mb-soundfont fluid-soundfont-gm liblo-tools sox

.PHONY: setup system-packages run test bench clean

# Only the packages not installed yet (apt-get update takes half a minute: not on every run).
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	elif command -v sudo >/dev/null; then \
	  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "not root and no sudo: install these Debian packages yourself: $$missing"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(TF_FLAVOUR),test]'
	touch $@

# Then the default model's first timbre point, rendered once (quick when it is stored
# already), so that even gansynth-live's first start is ready in seconds.
setup: system-packages $(VENV)/.installed
	@$(PY) -m gansynth_live.live.note_store || echo "make setup: the note store was not filled; the first start renders (slower)"

# The live server on the embedded default model. With no sound card it starts a JACK
# dummy server (as the tests do) so it still runs and can --record; ARGS adds flags, e.g.
# make run ARGS="--record set.wav --midi-virtual".
run: setup
	@if $(PY) -c "import sounddevice as sd, sys; sd.query_devices(kind='output')" 2>/dev/null; then \
	  $(PY) -m gansynth_live.live $(ARGS); \
	else \
	  echo "make run: no audio output device; starting a JACK dummy server for it"; \
	  export JACK_DEFAULT_SERVER=gansynth-live-run JACK_NO_AUDIO_RESERVATION=1; \
	  RT=--no-realtime; chrt -f 1 true 2>/dev/null && RT=--realtime; \
	  jackd -n gansynth-live-run $$RT -d dummy -r 48000 -p 256 >/dev/null 2>&1 & JACKD=$$!; \
	  trap "kill $$JACKD" EXIT INT TERM; sleep 2; \
	  $(PY) -m gansynth_live.live --device system $(ARGS); \
	fi

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/generate_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
