# The two commands a newcomer needs: `make demo` and `make test`. Both set up what is missing.
.PHONY: setup demo test bench pkg lint

setup:
	bash scripts/setup

pkg: setup
	bash scripts/build-pkg pkg

demo: setup
	bash scripts/demo

test: setup
	bash scripts/test

lint: setup
	bash scripts/test lint

bench: setup
	bash scripts/bench
