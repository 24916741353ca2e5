# softswitch — the two commands of the README:
#   make run    install into .venv, create ./softswitch.db with demo data, start the daemon
#   make test   install what the tests need (pip into .venv, Debian packages when root) and run them
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DB     ?= softswitch.db
# The integration tests mostly wait on phones and timers: three workers on two cores halve the run.
TEST_WORKERS ?= 3

.PHONY: run test venv deps system-deps bench bench-media clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,fast,codecs]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests and the media engine use: SIPp (sip-tester), ffmpeg (MP3 via pydub),
# espeak-ng and sox (prompt generation, tools/make_prompts.py), iproute2 and util-linux
# (`unshare -n`: the RFC 4475 corpus goes to a daemon in a loopback-only namespace).
# Installed only when missing and when we are root.
system-deps:
	@missing=""; \
	command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v sox >/dev/null 2>&1 || missing="$$missing sox"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run: sudo apt-get install -y$$missing)" >&2; exit 1; \
	  fi; \
	fi

deps: venv system-deps

run: venv
	$(VENV)/bin/softswitch --db $(DB) serve --demo

test: deps
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

bench: deps
	$(PIP) install -q -e '.[bench]'
	$(PY) bench/run.py

bench-media: deps
	$(PY) bench/media_relay.py && $(PY) bench/media_mixer.py

clean:
	rm -rf $(VENV) *.egg-info build dist
