# Training (issue 4): `make train` is in the main Makefile; this fragment adds the Table 3.3 reproduction.
# Four rows (float/fixed x with/without prior), 30 epochs each, two at a time; resumes rows already started.
reproduce-table3.3: setup
	$(PY) -m ultratrain.sw.tt.table33 --epochs 30 --out results_local/table3_3 --doc docs/results/table3_3.md

# The same pipeline in a few minutes (1 epoch on 3000 training images): a smoke test, not a result.
reproduce-table3.3-quick: setup
	$(PY) -m ultratrain.sw.tt.table33 --epochs 1 --train-limit 3000 --test-limit 1000 --out results_local/table3_3_quick

.PHONY: reproduce-table3.3-quick
