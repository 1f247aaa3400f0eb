# The README's two commands are `make demo` and `make test`; both call the
# scripts in scripts/, which also work without make.
.PHONY: build demo test proto proto-check bench clean

build:
	scripts/build.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

proto:
	scripts/proto.sh gen

proto-check:
	scripts/proto.sh check

bench:
	scripts/bench.sh

clean:
	rm -rf bin
