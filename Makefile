# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test stop lint

demo:   ## start Galaxy with the suite loaded and run "Describe image" on sample data
	scripts/demo

test:   ## pytest, planemo lint, planemo tests in Galaxy (container mode), browser tests
	scripts/test

stop:   ## stop the local Galaxy started by `make demo`
	scripts/galaxy down

lint:   ## planemo lint of every tool
	scripts/lint-tools
