# gr-e2e: every target sets itself up first (scripts/setup.sh is idempotent and
# takes seconds when everything is present), then runs inside setup_env.sh.
SHELL := /bin/bash
RUN := source ./setup_env.sh && export MPLBACKEND=Agg QT_QPA_PLATFORM=offscreen &&

.PHONY: setup demo test test-quick bench bench-model-free bench-ofdm bench-adversarial bench-learned-channel bench-mpa clean
setup:
	@bash scripts/setup.sh

demo: setup  ## the main job: train, evaluate, run the loopback flowgraph -> results/
	@$(RUN) python apps/demo.py --out results

test: setup  ## the whole test suite (pytest)
	@$(RUN) python -m pytest $(or $(TESTS),tests) $(PYTEST_ARGS)

test-quick: setup  ## the quick subset: everything but the tests marked slow (under a minute)
	@$(RUN) python -m pytest -m "not slow" $(or $(TESTS),tests) $(PYTEST_ARGS)

bench: setup  ## nn_decoder throughput against the stock C++ chain, and where its time goes
	@$(RUN) python bench/throughput.py --json bench/out/throughput.json && python bench/profile_decoder.py

bench-model-free: setup  ## model-free vs model-aware (offline and live), noisy feedback, RBF; live speed
	@$(RUN) python bench/model_free.py && python bench/live_training.py --json bench/out/live_training.json

bench-ofdm: setup  ## learned OFDM link vs stock ofdm_tx/ofdm_rx: error rates, sync, training curves, throughput
	@$(RUN) python bench/ofdm_link.py --json bench/out/ofdm_link.json --plot bench/out/ofdm_link.png

bench-adversarial: setup  ## attacks (jamming, white-box and black-box universal) vs regular, adversarial and GAN-defended receivers
	@$(RUN) python bench/adversarial.py

bench-learned-channel: setup  ## RA-GAN vs known-channel, model-free and plain-GAN training on AWGN and a PA channel; ablations; files for the learned-channel examples
	@$(RUN) python bench/learned_channel.py

bench-mpa: setup  ## MPA attention precoder vs frozen, gradient-adapted, classical and retrained links on unseen subchannel families; adaptation cost; checkpoints for the mpa_fading example
	@$(RUN) python bench/mpa.py

clean:
	rm -rf build prefix setup_env.sh
