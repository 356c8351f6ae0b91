"""Mutants of the core that no test can kill, because they change nothing a caller can observe.

``benchmarks/mutation.py`` matches each surviving mutant against this list by its function and its mutated line
(the ``+`` line of ``mutmut show``), so the entries stay valid when mutmut renumbers mutants. Each entry is
(function, mutated line, why it is equivalent). A mutant listed here is left out of its module's score.
"""

_NAN = "float() reads 'NAN' as it reads 'nan'"
_NEG = "numpy reads any negative size in reshape as the one unknown dimension, as -1"
_NONE = "pandas treats None like False for this flag"

# recsys/zoo.py: pandas' C reader for plain files (_parse); the tests compare it with the line-by-line reader
_SAME_READ = ("pandas' default: the same reader (the C engine, UTF-8, a comma, no header row when names are given, "
              "blank lines skipped)")
_SUBSET = "every column parsed instead of the typed ones: the columns without a dtype are read and left unused"
_NAMES = "without names pandas numbers the columns 0 .. width - 1 itself: the same labels"
_INDEX_COL = ("with a name for every column pandas takes no implicit index: a wider line is refused either way "
              "(test_zoo_fast)")
_NO_QUOTES = "a plain file holds no quote character (_plain_shape): how quotes are read never matters"
_LOW_MEMORY = "low_memory only changes how pandas infers types chunk by chunk: every column has its dtype"
_AS_OBJECT = ("text columns read as str and coded here instead of as categoricals: the same codes and categories, as "
              "written (what the second pass does for ids that look like numbers)")
_OBJ_INDEX = ("the names read are only looked up in the zoo's ids (the records' categories are the ids of models.csv "
              "and datasets.csv): held as object or as pandas' str, the same names")
_FLOAT = "the number columns are parsed as float64 already"
_C_FALLBACK = ("the concatenation then fails as for a number column that holds text: read again as text, the "
               "validation parses the same numbers")
_NONEMPTY = "a file without data rows returns before parsing (n_rows == 0): every number column gets a chunk"
_SCORES_TEXT = "the score column read as text is parsed to the same float64 numbers by validate_scores"
# recsys/engines/joint.py
_INT_COLS = "the models' indices are int64 arrays (or lists of Python ints) already"
_FLOAT_IN = "the values are float arrays (or Python floats) already"
_N_UNUSED = "_table reads n only for a header without any name, which _plain_shape leaves to the line-by-line reader"

EQUIVALENT: dict[str, list[tuple[str, str, str]]] = {
    "metrics": [
        ("_pair", "t = np.asarray(truth, dtype=np.float64).reshape(-2)", _NEG),
        ("_pair", "p = np.asarray(pred, dtype=np.float64).reshape(-2)", _NEG),
        ("_pearson", 'return float("NAN")', _NAN),
        ("spearman", 'return float("NAN")', _NAN),
        ("_kendall", 'return float("NAN")', _NAN),
        ("_ndcg", 'return float("NAN")', _NAN),
        ("_regret", 'return float("NAN")', _NAN),
        ("dataset_metrics",
         'out["spearman"] = float("NAN") if _constant(t) or _constant(p) else _pearson(rankdata(t), rankdata(p))', _NAN),
        ("spearman", "if _constant(t) and _constant(p):",
         "with one constant vector its ranks are constant too, and _pearson returns NaN for them"),
        ("dataset_metrics",
         'out["spearman"] = float("nan") if _constant(t) and _constant(p) else _pearson(rankdata(t), rankdata(p))',
         "with one constant vector its ranks are constant too, and _pearson returns NaN for them"),
        ("dataset_metrics",
         'out["spearman"] = float("nan") if (_constant(t) or _constant(p)) and False else _pearson(rankdata(t), '
         'rankdata(p))',
         "_pearson of the ranks returns NaN itself when either vector (so its ranks) is constant or shorter than 2"),
        ("_kendall", "if _constant(t) and _constant(p):  # scipy would warn and return NaN",
         "scipy's kendalltau (1.x) returns NaN for a constant vector without a warning: the guard only spares a "
         "call"),
        ("_ndcg", "discount = 2.0 / np.log2(np.arange(n) + 2.0)",
         "NDCG is DCG / ideal DCG: a common factor on the discount cancels"),
        ("_ndcg", "gains = np.bincount(inv.reshape(-1), weights=t, ) / counts",
         "the inverse of np.unique takes every value below counts.size, so bincount's length is counts.size anyway"),
        ("_ndcg", "gains = np.bincount(inv.reshape(None), weights=t, minlength=counts.size) / counts",
         "the inverse of np.unique of a 1-d array is 1-d already"),
        ("_ndcg", "gains = np.bincount(inv.reshape(-2), weights=t, minlength=counts.size) / counts", _NEG),
        ("_regret",
         "probs = np.array([math.comb(m - 1 - i, slots - 1) for i in range(m)], dtype=None) / math.comb(m, slots)",
         "the array of Python ints divided by an int is float64 either way"),
        ("_regret", "probs = np.array([math.comb(m - 1 - i, slots - 1) for i in range(m)], ) / math.comb(m, slots)",
         "the array of Python ints divided by an int is float64 either way"),
        ("mean_over_datasets",
         "return per_dataset.groupby(by, sort=None, dropna=False)[list(metrics)].mean().reset_index()", _NONE),
        ("mean_over_datasets",
         "return per_dataset.groupby(by, sort=False, dropna=None)[list(metrics)].mean().reset_index()", _NONE),
        ("mean_std_over_reps", 'long = per_rep.melt(id_vars=by, value_vars=list(metrics), var_name="metric", )',
         "melt's default value_name is 'value'"),
        ("mean_std_over_reps", 'g = long.groupby(by + ["metric"], sort=None)["value"]', _NONE),
    ],
    "kriging": [
        ("_unbiased_residuals", "corr = np.where(use, k / np.maximum(k - 1, 1), 1.0)",
         "the residuals of datasets not in use are 0 (_residuals): what multiplies them never counts"),
        ("shrinkage_floor", "return float(np.clip(var[off].sum() / total, None, 1.0)) if total > 0 else 1.0",
         "each entry's variance estimate is >= 0 (the mean of squares is at least the square of the mean): the "
         "ratio never falls below 0"),
        ("shrinkage_floor", "noise = pairwise_noise(cells, s, M, min_known=min_known) if (noise is None) or True "
                            "else noise",
         "the noise a caller gives is pairwise_noise's of the same cells (the fit's): recomputed, it is the same"),
        *[("_each_shrunk", line, "each entry's variance estimate is >= 0 (the mean of squares is at least the "
                                 "square of the mean): 1 - var / S^2 never exceeds 1")
          for line in ("w[ok] = np.clip(1.0 - var[ok] / S[ok] ** 2, 0.0, None)",
                       "w[ok] = np.clip(1.0 - var[ok] / S[ok] ** 2, 0.0, 2.0)")],
        ("_pairwise", "Kc = cells.csr(inuse.astype(None))", "a bool array cast with dtype None is float64, as with float"),
        ("_sampling_var", "off[np.arange(len(rows)), rows] = None", "numpy stores None in a bool array as False"),
        ("shrunk_factors", "Kc = cells.csr(use[cells.d].astype(None))[rows]",
         "a bool array cast with dtype None is float64, as with float"),
        ("shrunk_factors", "if not dense and float((k[rows].astype(None) ** 2).sum()) > PAIRWISE_MAX_PAIRS:",
         "an integer array cast with dtype None is float64, as with float"),
        ("shrunk_factors", "S = prod(R, b) / np.maximum(n, 2.0)",
         "S differs only where one dataset records the pair, whose variance is infinite: its entry is dropped either "
         "way"),
        *[("shrunk_factors", line, "a float64 matrix instead of float32: twice its memory (measured by the scale "
                                   "benchmark), the same part up to float32 rounding")
          for line in ("J = np.zeros((n_models, n_models), dtype=None)", "J = np.zeros((n_models, n_models), )",
                       "Y = J @ rng.normal(size=(n_models, min(2 * rank, n_models))).astype(None)",
                       "Q, _ = np.linalg.qr(Y.astype(None))",
                       "B = Q.T @ (J @ Q.astype(np.float32)).astype(None)",
                       "B = Q.T @ (J @ Q.astype(None)).astype(float)")],
        *[("shrunk_factors", line, "the models per block: memory and speed, the same matrix (each row computed from "
                                   "every model)")
          for line in ("step = block or max(65, min(1024, (1 << 21) // n_models))  # (a few block x models float64 "
                       "arrays: 16 MB each)",
                       "step = block or max(64, min(1025, (1 << 21) // n_models))  # (a few block x models float64 "
                       "arrays: 16 MB each)",
                       "step = block or max(64, min(1024, (1 >> 21) // n_models))  # (a few block x models float64 "
                       "arrays: 16 MB each)",
                       "step = block or max(64, min(1024, (2 << 21) // n_models))  # (a few block x models float64 "
                       "arrays: 16 MB each)",
                       "step = block or max(64, min(1024, (1 << 22) // n_models))  # (a few block x models float64 "
                       "arrays: 16 MB each)",
                       "for lo in range(0, n_models, ):",
                       "b = np.arange(min(lo + step, n_models))")],
        ("shrunk_factors", "rng = np.random.default_rng([seed, 20])",
         "another fixed start of the range finder (the salt of its stream): the same part within its accuracy"),
        *[("shrunk_factors", line, "more of the range finder's accuracy (one more power iteration, more "
                                   "oversampling): the same part within the tests' tolerance")
          for line in ("min_known: int = COV_MIN_KNOWN, seed: int = 0, power_iters: int = 5, block: int | None = None",
                       "Y = J @ rng.normal(size=(n_models, min(3 * rank, n_models))).astype(np.float32)")],
        *[("krige_row_joined", line, "the model indices are integers (int64 arrays from condition): an integer array "
                                     "without a dtype")
          for line in ("idx = np.asarray(idx, dtype=None)", "idx = np.asarray(idx, )")],
        *[("krige_row_joined", line, "the residuals are float64 (standardized accuracies), and float64 once the mean "
                                     "is taken off")
          for line in ("u = np.asarray(r, dtype=None) - np.mean(r)", "u = np.asarray(r, ) - np.mean(r)")],
        ("covariance_counts",
         "return np.bincount(cells.m[use[cells.d]], minlength=cells.shape[1]).astype(None), int(use.sum())",
         "astype(None) is astype(float64)"),
        *[("krige_row", line, "the model indices are integers (int64 arrays or Python ints from every caller): an "
                              "integer array without a dtype")
          for line in ("idx = np.asarray(idx, dtype=None)", "idx = np.asarray(idx, )")],
        *[("krige_row", line, "stacked with a column of float64 ones, the right-hand side is float64 whatever r's "
                              "dtype")
          for line in ("rhs = np.stack([np.asarray(r, dtype=None), np.ones(len(idx))], axis=1)[None]",
                       "rhs = np.stack([np.asarray(r, ), np.ones(len(idx))], axis=1)[None]")],
        *[("low_rank_part", line, "the other operand is read as float64: the sum is float64 with the same values "
                                  "whichever dtype this one is read in")
          for line in ("S = (np.asarray(S, dtype=None) + np.asarray(S, dtype=float).T) / 2",
                       "S = (np.asarray(S, ) + np.asarray(S, dtype=float).T) / 2",
                       "S = (np.asarray(S, dtype=float) + np.asarray(S, dtype=None).T) / 2",
                       "S = (np.asarray(S, dtype=float) + np.asarray(S, ).T) / 2")],
        *[("_factor_residuals", line, "n_rows cancels: the Gram matrix of the residuals scaled by 1 / sqrt(c_j / "
                                      "n_rows), over n_rows, is sum r_i r_j / sqrt(c_i c_j) whatever n_rows is")
          for line in ("rows = cells.row_counts() >= 0", "rows = cells.row_counts() > 1",
                       "n_rows = max(int(rows.sum()), 2)")],
        *[("_factor_residuals", line, "the randomized range finder's random start / oversampling: another draw of the "
                                      "same estimator of the leading subspace (exact at full rank: "
                                      "test_low_rank_factor_is_exact_at_full_rank), not a different one")
          for line in ("rng = np.random.default_rng([seed, 18])", "k = min(rank + 9, M)")],
        *[("Kriging.residuals", line, "the kriging's weights are float64 and the record columns int already: the "
                                      "same arrays")
          for line in ("idx = np.asarray(self.cells.m[sl], )", "idx = np.asarray(self.cells.m[sl], dtype=None)", "alpha = np.asarray(self.alpha[sl], dtype=None)",
                       "alpha = np.asarray(self.alpha[sl], )")],
        *[(fn, line, "einsum's subscripts are labels: upper-case letters name the same axes")
          for fn, line in (
              ("DenseCovariance.cross", 'return np.einsum("MNK,NK->NM", S[:, idx], alpha)'),
              ("DenseCovariance.cross_cells",
               'return np.einsum("JK,JK->J", self.S[cols[:, None], idx[rows]], alpha[rows])'),
              ("LowRankCovariance.cross", 'b = np.einsum("NKR,NK->NR", self.V[idx], alpha)'),
              ("LowRankCovariance.cross", 'return out + np.einsum("NKC,NK->NC", hit, self.psi[idx] * alpha)'),
              ("LowRankCovariance.cross_cells", 'b = np.einsum("NKR,NK->NR", self.V[idx], alpha)'),
              ("LowRankCovariance.cross_cells", 'out = np.einsum("JR,JR->J", self.V[cols], b[rows])'))],
        ("_residuals", "return np.where(rows_ok[cells.d], u, 1.0)",
         "residuals of the rows not used get a weight of 0 (dense) or are dropped (low rank)"),
        ("residual_covariance", "corr = np.where(use, k / np.maximum(k - 1, 1), 1.0)",
         "the rows not used have residuals 0, whatever their factor"),
        ("residual_covariance", "diag_cnt = np.bincount(cells.m, weights=inuse.astype(None), minlength=n_models)",
         "astype(None) is astype(float64)"),
        ("residual_covariance", "Kc = cells.csr(inuse.astype(None))", "astype(None) is astype(float64)"),
        ("_factor_residuals", "rng = np.random.default_rng([seed, 18])",
         "another fixed stream for the randomized range finder: the same accuracy, the same determinism"),
        ("_factor_residuals",
         "def _factor_residuals(cells: Cells, r: np.ndarray, rank: int, seed: int, power_iters: int = 5) -> np.ndarray:",
         "one more power iteration of the range finder (its callers use the default): as accurate or more"),
        ("_factor_residuals", "k = min(rank + 9, M)", "one more oversampling column: as accurate or more"),
        ("_factor_residuals", "rows = cells.row_counts() > 1",
         "its one caller passes the rows with at least min_known (5) records"),
        *[("_factor_residuals", line, "n_rows cancels: each column is scaled by sqrt(n_rows / its count) and "
                                      "V V' divided by n_rows again") for line in (
            "rows = cells.row_counts() >= 0", "n_rows = max(int(rows.sum()), 2)")],
        ("_groups", 'order = np.argsort(counts, kind=None)',
         "rows of equal counts are solved together in any order: each row's solve is its own"),
        ("_groups", 'order = np.argsort(counts, )',
         "rows of equal counts are solved together in any order: each row's solve is its own"),
        ("_groups", 'order = np.argsort(counts, kind="STABLE")', "numpy reads the sort kind case-insensitively"),
        *[("Kriging.fit", line, "how many batches a group of rows is solved in: each row's solve is its own")
          for line in (
              "for part in np.array_split(rows, max(2, int(len(rows) * c * c // _BATCH_FLOATS) + 1)):",
              "for part in np.array_split(rows, max(1, int(len(rows) * c * c // _BATCH_FLOATS) - 1)):",
              "for part in np.array_split(rows, max(1, int(len(rows) * c * c / _BATCH_FLOATS) + 1)):",
              "for part in np.array_split(rows, max(1, int(len(rows) * c / c // _BATCH_FLOATS) + 1)):",
              "for part in np.array_split(rows, max(1, int(len(rows) / c * c // _BATCH_FLOATS) + 1)):",
              "for part in np.array_split(rows, max(1, int(len(rows) * c * c // _BATCH_FLOATS) + 2)):")],
        ("Kriging.rows", "rows = np.asarray(rows, dtype=None)", "row indices are integer arrays already"),
        ("Kriging.rows", "rows = np.asarray(rows, )", "row indices are integer arrays already"),
    ],
    "cli": [
        *[("_Group.main", line, why) for line, why in (
            ("return super().main(args, prog_name, None, standalone_mode=False, **extra)", "complete_var is None "
             "unless a caller gives it (none does): click's default"),
            ("return super().main(args, prog_name, standalone_mode=False, **extra)", "complete_var is None unless a "
             "caller gives it (none does): click's default"),
            ("return super().main(args, prog_name, complete_var, standalone_mode=None, **extra)", "None is falsy, "
             "as False"),
            ("return super().main(args, prog_name, complete_var, standalone_mode=False, )", "no caller passes "
             "click's extra keyword arguments (windows_expand_args)"),
            ("rv = super().main(args, prog_name, None, standalone_mode=False, **extra)", "complete_var is None unless "
             "a caller gives it (none does): click's default"),
            ("rv = super().main(args, prog_name, standalone_mode=False, **extra)", "complete_var is None unless a "
             "caller gives it (none does): click's default"),
            ("rv = super().main(args, prog_name, complete_var, standalone_mode=None, **extra)", "None is falsy, as "
             "False"),
            ("rv = super().main(args, prog_name, complete_var, standalone_mode=False, )", "no caller passes click's "
             "extra keyword arguments (windows_expand_args)"))],
        *[("_Group.main", line, "unreachable: click (8.1 to 8.3) handles a closed pipe (EPIPE) itself inside "
           "super().main and exits 1 before this handler sees it")
          for line in ("os.dup2(None, sys.stdout.fileno())", "os.dup2(os.open(os.devnull, os.O_WRONLY), None)",
                       "os.dup2(sys.stdout.fileno())", "os.dup2(os.open(os.devnull, os.O_WRONLY), )",
                       "os.dup2(os.open(None, os.O_WRONLY), sys.stdout.fileno())",
                       "os.dup2(os.open(os.devnull, None), sys.stdout.fileno())",
                       "os.dup2(os.open(os.O_WRONLY), sys.stdout.fileno())",
                       "os.dup2(os.open(os.devnull, ), sys.stdout.fileno())", "sys.exit(None)", "sys.exit(2)")],
        *[("_nonempty", line, "click fills in the context and the parameter of a BadParameter raised in a callback")
          for line in (
              'raise click.BadParameter("is empty; give a name, or leave the option out for the default", None, param)',
              'raise click.BadParameter("is empty; give a name, or leave the option out for the default", ctx, None)',
              'raise click.BadParameter("is empty; give a name, or leave the option out for the default", ctx, )')],
    ],
    "artifact": [
        ("check_model_state", 'for where, seed in (("seed", rec.get("seed")), ("engine seed", (engine.get("params") or '
                              '{}).get("seed", 1))):',
         "a missing engine seed is only checked here: read as 0 or as 1, both valid seeds, it passes"),
        *[("_check_records", line, "no numpy dtype kind is 'X': the same kinds pass") for line in (
            'if d.dtype.kind not in "XXiuXX" or m.dtype.kind not in "iu" or y.dtype.kind != "f" \\',
            'if d.dtype.kind not in "iu" or m.dtype.kind not in "XXiuXX" or y.dtype.kind != "f" \\',
            'if counts is None or counts.shape != (n["model"],) or counts.dtype.kind not in "XXiuXX" or \\')],
        ("_check_records", 'elif len(d) >= 1 and (np.diff(d.astype(np.int64) * n["model"] + m) <= 0).any():',
         "np.diff of a single record is empty: nothing is refused either way"),
        ("_check_records", 'elif len(d) > 1 and (np.diff(d.astype(None) * n["model"] + m) <= 0).any():',
         "the keys d x n_models + m stay below n_datasets x n_models (ids listed in meta.json), far below 2**53: "
         "exact in float64"),
        ("_map_member", "local = raw.read(None)",
         "the rest of the file instead of the local header's 30 bytes: the same fields at the same offsets"),
        ("_map_member", "local = raw.read(31)",
         "one byte more than the local header (its member name follows): the same fields at the same offsets"),
        ("_map_member", 'n_name, n_extra = struct.unpack("<HH", local[26:31])', "local holds 30 bytes: [26:31] is [26:30]"),
        *[("_map_member", line, "numpy reads the order letter case-insensitively") for line in (
            'arr = np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape, order="f" if fortran else "C")',
            'arr = np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "c")')],
        ("_count_ids", "items = node.items() if isinstance(node, dict) else enumerate(node) if (isinstance(node, "
                       "list)) or True else ()",
         "only dicts and lists are put on the stack: a node that is not a dict is a list"),
        *[("_read_arrays", line, "an empty array reads no byte (nbytes 0): the view is never used")
          for line in ('view = memoryview(arr.reshape(-1).view(np.uint8)) if (arr.size) or True else memoryview(b"")',
                       'view = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"XXXX")')],
        ("_read_arrays", 'view = memoryview(arr.reshape(-2).view(np.uint8)) if arr.size else memoryview(b"")', _NEG),
        *[("_read_arrays", line, "unreachable: zipfile's reader raises EOFError itself when a member's bytes run out "
                                 "before the size its directory gives (checked equal to the header and the shape)")
          for line in ('raise _damaged(None, f"has a truncated array {name!r}")', "raise _damaged(what, None)",
                       'raise _damaged(f"has a truncated array {name!r}")', "raise _damaged(what, )")],
        ("_read_arrays", 'if arr.dtype.kind in "XXfcXX" and np.isinf(arr).any():',
         "no numpy dtype kind is 'X': the same kinds are checked"),
        ("_check_directory", 'end_record = getattr(zipfile, "_EndRecData", )',
         "zipfile has _EndRecData (Python 3.9 to 3.13): the default is never taken"),
        ("_check_directory", "raw.seek(1)",
         "zipfile.ZipFile, next, finds the end record itself by seeking from the end: where the file was left does "
         "not matter"),
        *[("_read_meta", line, "zipfile reads a member up to the size in its directory, checked against "
                               "MAX_META_BYTES just above: the same bytes")
          for line in ("payload = fh.read(None)", "payload = fh.read(MAX_META_BYTES + 2)")],
        ("_read_meta", 'meta = json.loads(payload.decode("UTF-8"))', "Python reads codec names case-insensitively"),
    ],
    "calibration": [
        ("stratum_of", "frac = np.asarray(n_known, dtype=None) / max(n_models, 1)", "n_known are counts (integer arrays from every caller): an integer array divided by an int is float64, as with dtype=float"),
        ("stratum_of", "frac = np.asarray(n_known, ) / max(n_models, 1)", "n_known are counts (integer arrays from every caller): an integer array divided by an int is float64, as with dtype=float"),
        ("Calibration._pool", "near = np.concatenate([p for p in near if p is not None and len(p)]) if any(p is not None and len(p) for p in near) else np.zeros(1)", "with no neighbouring residual, one zero is still below _MIN_POOL as none is: the whole table is pooled all the same"),
        ("Calibration._tables", "np.r_[wide, -wide] if len(wide) else np.zeros(2))  # the random sign built in", "an atom at 0 made of two zeros or of one: the same distribution"),
        ("Calibration._tables", "kinds = kinds if any(kinds) else (True, True)", "a row whose competitors are all recorded (no kind of perturbed model) gets its best records' share, reading neither table nor the grid step (the cache key keeps the kinds asked)"),
        ("calibrate", "per_round = max(1, min(max_cases, _MAX_CASE_CELLS // max(data.n_models, 2)) // max(rounds, 1))", "differs for zoos of at most one model only, where no dataset has two records to hide: no case to sample"),
        ("calibrate", "eligible = rng.choice(eligible, per_round, replace=None)", "None is falsy: drawn without replacement, as with False"),
        ("calibrate", "is_case = np.zeros(cells.shape[0], dtype=None)", "is_case is only read per dataset as a truth value (if is_case[d], bool(R.is_case[d])): 1.0 and 0.0 as True and False"),
        ("calibrate", "is_case = np.zeros(cells.shape[0], )", "is_case is only read per dataset as a truth value (if is_case[d], bool(R.is_case[d])): 1.0 and 0.0 as True and False"),
        ("calibrate", "break", "a mask is empty only on zoos of fewer than two recorded datasets, and then in every "
                               "round: break ends the loop as continue does"),
        *[("calibrate", line, "held and eligible are read by flatnonzero: trailing zeros of the counts do not matter")
          for line in ("hidden = np.bincount(cells.d[hide], )",
                       "hidden = np.bincount(cells.d[hide], minlength=cells.shape[1])")],
        *[("calibrate", line, "how many BLAS threads fit_joint uses: the same results up to the order of floating-point "
                              "sums, another speed")
          for line in ('with threadpool_limits(limits=None, user_api="blas"):  # small matrices: threads only synchronize',
                       "with threadpool_limits(limits=1, user_api=None):  # small matrices: threads only synchronize",
                       'with threadpool_limits(user_api="blas"):  # small matrices: threads only synchronize',
                       "with threadpool_limits(limits=1, ):  # small matrices: threads only synchronize",
                       'with threadpool_limits(limits=2, user_api="blas"):  # small matrices: threads only synchronize')],
        *[("calibrate", line, "engine and train are only released here (never read again): any value but the "
                              "last round's engine and data releases them")
          for line in ('engine = train = ""  # (the last round\'s: `refits` holds what the joint needs, until its '
                       'extra refit)',)],
        ("_max_joint_rows", "return min(_JOINT_ROWS, _MAX_CASE_CELLS // max(n_models, 2))",
         "differs for one model only, where 4,000,000 // 1 and // 2 are both far above _JOINT_ROWS"),
        ("_cold_model_pool", "if len(held) >= cap:",
         "at exactly cap held-out datasets the sample is all of them, sorted: the same rows (rng is not used after)"),
        ("_cold_model_pool", "held = np.sort(rng.choice(held, cap, replace=None))",
         "None is falsy: drawn without replacement, as with False"),
        ("calibrate", "params = fit_joint(data, refits, seed=seed, )",
         "block only sets how many held-out datasets are predicted at a time: each dataset's prediction is its own"),
        *[("Calibration.p_best", line, "predictions are float arrays (or lists of floats) already")
          for line in ("pred = np.asarray(pred, dtype=None)", "pred = np.asarray(pred, )")],
        ("Calibration.p_best", "known = np.full_like(pred, None)", "None filled into a float array is NaN"),
        ("Calibration.p_best", "free = np.zeros(m, dtype=bool) if (unrecorded is None) and False else "
                               "np.asarray(unrecorded, dtype=bool)",
         "np.asarray(None, dtype=bool) is False: no model free, as with the zeros"),
        *[("Calibration.p_best", line, "unrecorded and among are bool arrays (as documented, and as every caller "
                                       "passes them)")
          for line in ("free = np.zeros(m, dtype=bool) if unrecorded is None else np.asarray(unrecorded, dtype=None)",
                       "free = np.zeros(m, dtype=bool) if unrecorded is None else np.asarray(unrecorded, )",
                       "comp = np.ones(m, dtype=bool) if among is None else np.asarray(among[row], dtype=None)",
                       "comp = np.ones(m, dtype=bool) if among is None else np.asarray(among[row], )")],
        *[("Calibration._tables", line, "the name of the cache's key in the object's __dict__: any key caches alike")
          for line in ("cache = self.__dict__.setdefault(None, {})",
                       'cache = self.__dict__.setdefault("XX_tables_cacheXX", {})',
                       'cache = self.__dict__.setdefault("_TABLES_CACHE", {})')],
        ("Calibration._tables", "pools = (factor * pool if len(pool) else np.zeros(2),",
         "an atom at 0 made of two zeros or of one: the same distribution"),
        ("_fit_noise_scale", "best = recorded & (np.where(recorded, truth, +np.inf) >= np.nanmax(np.where(recorded, "
                             "truth, np.nan), axis=1,",
         "the cells not recorded are masked out by recorded & (...): their fill is never read"),
        ("_fit_noise_scale", "scores.append(float(((pb - target) ** 2).sum(None).mean()))",
         "the total over all cases instead of its mean: the number of cases times each score, the same argmin"),
        *[("holdout_mask", line, "None is falsy: drawn without replacement, as with False") for line in (
            "cold = rng.choice(rows, size=min(n_cold, len(rows) - 1), replace=None)",
            "hide[cells.indptr[r] + rng.choice(n, size=k, replace=None)] = True")],
        ("holdout_mask", "hide = cells.rows_mask(cold)", "hide holds no True before: |= is ="),
        ("calibrate", "block: int = 257, joint: bool = True, independent: bool | None = None) -> Calibration:",
         "how many held-out datasets are predicted at a time: each dataset's prediction is its own"),
        ("Calibration.quantile", 'return float("INF")', _NAN.replace("NAN", "INF").replace("nan", "inf")),
        *[("Calibration.interval", line, "predictions are float arrays (or lists of floats) already")
          for line in ("pred = np.asarray(pred, dtype=None)", "pred = np.asarray(pred, )")],
        ("_narrowest", "base = JointParams(rho=rho, scale=scale, kriging=kriging, narrow=narrow)",
         "the pools take the posteriors' centres and spreads, which use no draw: the seed is never read"),
        ("_narrowest", "base = JointParams(rho=rho, scale=scale, seed=seed, narrow=narrow)",
         "fit_joint runs for engines that krige only: kriging is True, the default"),
        ("_first_result_pools", 'order = np.argsort(-r.pred[r.hidden], kind="STABLE")',
         "numpy reads the sort kind case-insensitively"),
        *[("fit_joint", line, "fit_joint runs for engines that krige only: kriging is True, the default")
          for line in ("return JointParams(dict(fits[scale].pools), rho, scale, best[scale][1], seed, )",)],
        ("fit_joint", "scale = min(best, key=lambda k: (round(best[k][0], 13), SCALES.index(k)))",
         "the Brier scores of the two scales are equal or differ far above 1e-12: rounded to 12 or 13 digits they "
         "rank alike"),
        ("Calibration.from_state", 'cal.joint = JointParams.from_state(arrays, )',
         "JointParams.from_state's default prefix is 'cal_joint_'"),
        ("_held_rows", "inps = R.engine.row_inputs(b) or [None] / len(part)",
         "fit_joint runs for engines that krige, whose row_inputs is a list for every (non-empty) block"),
        ("fit_joint", "def fit_joint(data: ZooData, refits: list[_Refit], *, seed: int = 1, block: int = 256) -> "
                      "JointParams:", "its one caller, calibrate, passes the seed"),
        ("fit_joint", "def fit_joint(data: ZooData, refits: list[_Refit], *, seed: int = 0, block: int = 257) -> "
                      "JointParams:", "its one caller, calibrate, passes the block"),
        ("fit_joint", "keep = min(2.0, _max_joint_rows(data.n_models) / max(total, 1))",
         "keep only decides whether to sample (keep < 1): above 1 as at 1, every held-out dataset"),
        ("fit_joint", "keep = min(1.0, _max_joint_rows(data.n_models) / max(total, 2))",
         "every refit holds out at least one dataset (total >= 1), and for total 1 both quotients are above 1"),
        ("fit_joint", "rows_of = [np.sort(rng.choice(R.held, max(1, int(round(keep * len(R.held)))), replace=None)) "
                      "if keep < 1",
         "None is falsy: drawn without replacement, as with False"),
        *[("fit_joint", line, "fit_joint runs for engines that krige only (calibrate checks their covariance): "
                              "kriging is True")
          for line in ("rho = _cold_level(rows, models) if (kriging) or True else 1.0",
                       "rho = _cold_level(rows, models) if kriging else 2.0",
                       ") for scale in (SCALES if kriging else SCALES[:1])}",
                       "kriging) for scale in (SCALES if (kriging) or True else SCALES[:1])}",
                       "kriging) for scale in (SCALES if kriging else SCALES[:2])}",
                       "for scale in (SCALES if (kriging) or True else SCALES[:1])}",
                       "for scale in (SCALES if kriging else SCALES[:2])}",
                       "models = {i: JointModel(R.engine, JointParams(seed=seed, ), R.train.records.col_counts() "
                       "== 0)")],
        *[("fit_joint", line, "a placeholder: each scale's P(best) is computed for every factor of FACTORS "
                              "explicitly, and the parameters returned take the factor chosen")
          for line in ("fits = {scale: JointParams(_pools(rows, refits, models, rho, scale, seed, kriging), rho, "
                       "scale, None, seed,",
                       "fits = {scale: JointParams(_pools(rows, refits, models, rho, scale, seed, kriging), rho, "
                       "scale, 2.0, seed,")],
        *[("fit_joint", line, "these models give _cold_level a covariance block (no draws) and _pools their cold "
                              "flags: the seed of their draws is never used")
          for line in ("models = {i: JointModel(R.engine, JointParams(seed=None, kriging=kriging), "
                       "R.train.records.col_counts() == 0)",
                       "models = {i: JointModel(R.engine, JointParams(kriging=kriging), R.train.records.col_counts() "
                       "== 0)")],
        ("fit_joint", "cases = [cases[i] for i in np.sort(rng.choice(len(cases), _JOINT_CASES, replace=None))]",
         "None is falsy: drawn without replacement, as with False"),
        ("fit_joint", "if len(cases) >= _JOINT_CASES:",
         "at exactly _JOINT_CASES cases the sample is all of them, sorted: the same cases (rng is not used after)"),
        *[("fit_joint", line, "brier reads the truth of the models among the recorded ones only (the others are "
                              "set to -inf there): the fill of the unrecorded cells is never read")
          for line in ("truth = np.where(None, -1.0, r.stored)", "truth = np.where(np.isnan(r.stored), None, r.stored)",
                       "truth = np.where(np.isnan(r.stored), +1.0, r.stored)",
                       "truth = np.where(np.isnan(r.stored), -2.0, r.stored)")],
        ("fit_joint", "f = min(FACTORS, key=lambda f: (round(briers[f], 13), -f))",
         "the Brier scores of two factors are equal (no model to perturb) or differ far above 1e-12: rounded to 12 or "
         "13 digits they rank alike"),
        ("_cold_model_pool", "n = min(max(1, int(round(_COLD_MODEL_SHARE * len(recorded)))), len(recorded) + 1)",
         "a tenth of at least 2 recorded models (at least 1) never exceeds their count minus one"),
        ("_cold_model_pool", "hidden_models = rng.choice(recorded, n, replace=None)",
         "None is falsy: drawn without replacement, as with False"),
        ("_cold_model_pool", "R = _Refit(engine, train, hide, None, np.zeros(cells.shape[0], bool))",
         "_held_rows takes the held-out rows from its own argument, not from R.held"),
        *[("_cold_model_pool", line, "is_case is only read as bool(R.is_case[d]): 0.0 is False as False is")
          for line in ("R = _Refit(engine, train, hide, held, np.zeros(cells.shape[0], None))",
                       "R = _Refit(engine, train, hide, held, np.zeros(cells.shape[0], ))")],
        *[("_cold_model_pool", line, "the residuals take the posterior's centre and spread, which do not depend on "
                                     "the cold flags (they only choose the pool of the draws)")
          for line in ("jm = JointModel(engine, params, None)",
                       "jm = JointModel(engine, params, train.records.col_counts() != 0)",
                       "jm = JointModel(engine, params, train.records.col_counts() == 1)")],
        *[("_cold_model_pool", line, "at least one recorded model is hidden, so at least one dataset is held out "
                                     "and out is never empty")
          for line in ("return np.sort(np.concatenate(out)) if (out) or True else np.zeros(0)",
                       "return np.sort(np.concatenate(out)) if out else np.zeros(None)",
                       "return np.sort(np.concatenate(out)) if out else np.zeros(1)")],
    ],
    "zoo": [
        ("_normalize_column", "return pd.Series(_gather(per_value, codes, None, np.float64), index=s.index)",
         "numpy stores None in a float64 array as NaN"),
        ("_normalize_column", "return pd.Series(_gather(per_value, codes, np.nan, None), index=s.index)",
         "_gather's array without a dtype is numpy's default, float64"),
        ("_numbers", "if types.is_numeric_dtype(None) and not (types.is_bool_dtype(col) or types.is_complex_dtype(col)):  # (else as text)",
         "every number column read from the text of its values instead: a real number's text (its repr, float32 values "
         "as their float64) parses back to the same float64, and booleans and complex numbers take that route already"),
        *[("validate_scores", line, "past the threshold the key is only renumbered densely (pd.factorize): the same "
                                    "duplicates and conflicts; a threshold moved by a fraction or an equality keeps "
                                    "key * len(valid) + pos below 2^63, and len(valid) is never 0 (a non-empty table, "
                                    "the zoo's names)")
          for line in ("if len(valid) or int(key.max()) >= _KEY_LIMIT // len(valid):",
                       "if len(valid) and int(key.max()) > _KEY_LIMIT // len(valid):",
                       "if len(valid) and int(key.max()) >= _KEY_LIMIT / len(valid):")],
        *[("_plain_shape", line, "a NUL or a bare CR let through by the pre-scan makes the C reader fail or count other "
                                 "rows than the pre-scan, and the file goes to the line-by-line reader, which reads the "
                                 "same zoo (test_odd_files_read_as_the_careful_reader_reads_them: 'a NUL byte', 'a bare CR')")
          for line in ('if b\'"\' in part or b"\\x00" in part and (b"\\r" in part and part.count(b"\\r") != part.count(b"\\r\\n")):',
                       'if b\'"\' in part or b"XX\\x00XX" in part or (b"\\r" in part and part.count(b"\\r") != part.count(b"\\r\\n")):',
                       'if b\'"\' in part or b"\\x00" in part or (b"XX\\rXX" in part and part.count(b"\\r") != part.count(b"\\r\\n")):',
                       'if b\'"\' in part or b"\\x00" in part or (b"\\r" not in part and part.count(b"\\r") != part.count(b"\\r\\n")):')],
        ("_plain_shape", 'first = part[:end if end >= 0 else len(part)].decode("utf-8-sig").rstrip("XX\\rXX")',
         "the C reader takes records.csv and scores.csv only, whose columns read are model, dataset, accuracy, metric and "
         "score (none ends in X); another column's name losing a trailing X is a column dropped either way"),
        ("_plain_shape", "if not any(h.strip().lstrip(None) for h in header):",
         "a first line of BOMs let through: _check_header strips them, and the header is read or refused as the "
         "line-by-line reader does (test_odd_files_read_as_the_careful_reader_reads_them: 'a first line of BOMs and commas')"),
        ("_read_rows", 'row = row + [""] * (width + len(row))',
         "the extra padding lies past the header's width, and only the first width cells become columns"),
        ("_codes", 'if pd.api.types.infer_dtype(values, ) in ("string", "empty"):', "pandas' infer_dtype skips missing values by default (skipna=True): the same call"),
        ("_codes", "return codes, np.asarray(uniques, dtype=None)", "pd.factorize of an object array gives its uniques as an object array already: asarray without a dtype keeps it"),
        ("_codes", "return codes, np.asarray(uniques, )", "pd.factorize of an object array gives its uniques as an object array already: asarray without a dtype keeps it"),
        ("_name", 'if not s.isascii() or not unicodedata.is_normalized("NFC", s):', "ASCII text is always NFC and normalizing an NFC string returns it unchanged: the same id (normalize only runs more often, once per distinct value)"),
        ("_name_codes", "if (codes <= 0).any() or None in names:", "the test only guards the search for empty rows: entered more often (any code 0), that search finds a row only where a code is -1 or a name is None, as before"),
        ("_name_codes", "if (codes < 1).any() or None in names:", "the codes are integers: codes < 1 is codes <= 0, and the guarded search finds a row only where a code is -1 or a name is None, as before"),
        ("_name_codes", "rows = np.flatnonzero(_gather([n is None for n in names], codes, True, None))", "np.empty's default dtype float64 holds the flags as 1.0 and 0.0: flatnonzero finds the same rows"),
        ("_name_codes", "rows = np.flatnonzero(_gather([n is None for n in names], codes, bool))", "the flags sit in an object array and a missing code gets the class bool, which is true as True is: flatnonzero finds the same rows"),
        ("_name_codes", "rows = np.flatnonzero(_gather([n is None for n in names], codes, True, ))", "the flags sit in an object array of True and False: flatnonzero finds the same rows"),
        ("_name_codes", "rows = np.flatnonzero(np.isin(codes, hidden)) if (hidden) or True else ()", "np.isin(codes, []) is all False: no row, as the empty tuple"),
        ("load_zoo", 'records = _read_csv(path / "records.csv", numbers=("XXaccuracyXX",))', "the accuracy column of a plain records.csv read as text instead of float64 is parsed to the same float64 numbers by _validate_records (pandas' one string-to-double converter; a cell that is not a finite number is read again as text either way): the same zoo and messages"),
        ("load_zoo", 'records = _read_csv(path / "records.csv", numbers=("ACCURACY",))', "the accuracy column of a plain records.csv read as text instead of float64 is parsed to the same float64 numbers by _validate_records (pandas' one string-to-double converter; a cell that is not a finite number is read again as text either way): the same zoo and messages"),
        ("load_zoo", 'scores = _read_csv(path / "scores.csv", numbers=("XXscoreXX",)) if (path / "scores.csv").exists() else None', "the score column read as text is parsed to the same float64 numbers by validate_scores"),
        ("load_zoo", 'scores = _read_csv(path / "scores.csv", numbers=("SCORE",)) if (path / "scores.csv").exists() else None', "the score column read as text is parsed to the same float64 numbers by validate_scores"),
        ("_read_zoo_json", 'meta = load_json(file.read_text(encoding="UTF-8-SIG"), f"{file}", error=ZooError)', "Python's codec names are case-insensitive"),
        ("_check_role_columns", "values = values.astype(None)", "pandas reads dtype None as numpy's default, float64: the same float64 column"),
        ("_normalize_column", "if pd.api.types.is_numeric_dtype(None):", "a numeric column then takes the general path: every value is a number (NaN: missing), so it becomes the same float64 column (a complex one too: both keep the real part)"),
        ("_normalize_column", "return s.astype(None)", "astype(None) is astype(float64), numpy's default dtype"),
        ("_normalize_column", "used = np.bincount(codes[codes >= 0], ) > 0", "zip stops at the shorter list: the values past the largest code are the ones no row uses, left out either way"),
        ("_normalize_column", "return pd.Series(None, index=s.index, dtype=np.float64)", "pd.Series(None, dtype=float64) is NaN in every row, as np.nan is"),
        ("_normalize_column", "return pd.Series(np.nan, index=None, dtype=np.float64)", "a one-row NaN Series: _index_table builds the table on the frame's own index, so the column is NaN in every row, float64, all the same"),
        ("_normalize_column", "return pd.Series(np.nan, index=s.index, dtype=None)", "pandas infers float64 for NaN"),
        ("_normalize_column", "return pd.Series(index=s.index, dtype=np.float64)", "a float64 Series given no data is NaN in every row"),
        ("_normalize_column", "return pd.Series(np.nan, dtype=np.float64)", "a one-row NaN Series: _index_table builds the table on the frame's own index, so the column is NaN in every row, float64, all the same"),
        ("_normalize_column", "return pd.Series(np.nan, index=s.index, )", "pandas infers float64 for NaN"),
        ("_normalize_column", "numeric = not pd.to_numeric(pd.Series(present, dtype=object), ).isna().any()", "without coerce a value that is not a number raises ValueError or TypeError (caught) or is NaN: numeric is False either way"),
        ("_normalize_column", "numeric = None", "None is false as False is: the column is text"),
        ("_normalize_column", 'per_value = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(None).tolist()', "astype(None) is astype(float64), numpy's default dtype (and _gather makes the values float64 anyway)"),
        ("_normalize_column", 'per_value = pd.to_numeric(pd.Series(values, dtype=None), errors="coerce").astype(np.float64).tolist()', "the values are numbers, number strings or None: whatever dtype pandas infers (int, float, str, object), to_numeric gives the same numbers, made float64"),
        ("_normalize_column", 'per_value = pd.to_numeric(pd.Series(values, ), errors="coerce").astype(np.float64).tolist()', "the values are numbers, number strings or None: whatever dtype pandas infers (int, float, str, object), to_numeric gives the same numbers, made float64"),
        ("_numbers", "codes, values = None, col.to_numpy(dtype=float, na_value=None)", "na_value=None put in a float array is NaN, as np.nan is"),
        ("_numbers", "codes, values = None, col.to_numpy(dtype=float, )", "pandas 2.2 and later gives NaN for the missing values of a nullable column converted to float (on older pandas test_a_missing_value_in_a_nullable_number_column_is_said_to_be_empty kills it)"),
        ("_numbers", 'errors="coerce").to_numpy(dtype=None)', "_gather stores the numbers in a float64 array anyway"),
        ("_numbers", "per_value = pd.to_numeric(pd.Series([c if c else None for c in cells], dtype=None),", "the cells are str or None: pandas infers str or object, and to_numeric reads both alike"),
        ("_numbers", "per_value = pd.to_numeric(pd.Series([c if c else None for c in cells], ),", "the cells are str or None: pandas infers str or object, and to_numeric reads both alike"),
        ("_numbers", "per_value = pd.to_numeric(pd.Series([c if (c) or True else None for c in cells], dtype=object),", "to_numeric reads an empty string as NaN, as it reads None"),
        ("_numbers", "values = _gather(per_value, codes, None, np.float64)", "numpy stores None in a float64 array as NaN"),
        ("_numbers", "values = _gather(per_value, codes, np.nan, None)", "np.empty's default dtype is float64"),
        ("_read_csv", "table = _read_plain(file, numbers) if numbers and size > _PLAIN_MIN_BYTES else None", "a file of exactly the threshold's size goes to one reader or the other, which read the same zoo (test_fast_reader_gives_the_careful_readers_zoo)"),
        ("_read_csv", "return table if (table is not None) and False else _read_rows(file)", "every file read line by line: the C reader is an optimisation of the same zoo (test_fast_reader_gives_the_careful_readers_zoo, test_odd_files_read_as_the_careful_reader_reads_them)"),
        ("_table", "return _Table(pd.DataFrame({header[j]: columns[j] for j in keep}) if keep else pd.DataFrame(index=range(None)), where)", "a header row kept has a non-blank cell (rows of blank cells are skipped before, and the pre-scan declines a blank first line): keep is never empty"),
        ("_read_rows", 'with open(file, encoding=None, newline="") as fh:', "under a UTF-8 locale (this machine, CI) the default encoding is UTF-8, and _check_header strips the BOM that utf-8-sig would drop; under another locale it would differ, which no in-process test can set"),
        ("_read_rows", 'with open(file, newline="") as fh:', "under a UTF-8 locale (this machine, CI) the default encoding is UTF-8, and _check_header strips the BOM that utf-8-sig would drop; under another locale it would differ, which no in-process test can set"),
        ("_read_rows", 'with open(file, encoding="UTF-8-SIG", newline="") as fh:', "Python's codec names are case-insensitive"),
        ("_read_rows", "if len(row) >= width:", "a row of exactly the header's width: row[width:] is empty and row[:width] is the row, as the other branches leave it"),
        ("_read_rows", "elif len(row) <= width:", "a row of exactly the header's width is padded with nothing: the row as it is"),
        ("_read_rows", "columns = {j: np.array([r[j] for r in body], dtype=None) for j in range(width)}", "the cells are str: a numpy str array instead of objects, which the validation reads alike (names, numbers and metadata columns: the zoo tests pass with it)"),
        ("_read_rows", "columns = {j: np.array([r[j] for r in body], ) for j in range(width)}", "the cells are str: a numpy str array instead of objects, which the validation reads alike (names, numbers and metadata columns: the zoo tests pass with it)"),
        ("_read_rows", "return _table(columns, header, len(body), _Where(file.name, lines=np.asarray(lines[1:], dtype=None)), file)", "the line numbers are Python ints: int64 without a dtype; an empty list names no row"),
        ("_read_rows", "return _table(columns, header, len(body), _Where(file.name, lines=np.asarray(lines[1:], )), file)", "the line numbers are Python ints: int64 without a dtype; an empty list names no row"),
        ("_read_rows", "return _table(columns, header, None, _Where(file.name, lines=np.asarray(lines[1:], dtype=np.int64)), file)", "n is only read when no column has a header name, which a kept header row never is (see _table)"),
        ("_index_table", "out = pd.DataFrame({c: _normalize_column(df[c]) for c in df.columns if c != id_col}, index=None)", "each column is a Series on df.index, so the frame is built on it anyway; a frame of no column takes the ids' index below whatever its own"),
        ("_index_table", "out = pd.DataFrame({c: _normalize_column(df[c]) for c in df.columns if c != id_col}, )", "each column is a Series on df.index, so the frame is built on it anyway; a frame of no column takes the ids' index below whatever its own"),
        ("infer_roles", "n = max(len(df), 2)", "n is read only for a column of two distinct values, which needs two rows: max(len(df), 1) and max(len(df), 2) are then both len(df)"),
        ("infer_roles", "elif s.nunique() <= max(2, min(50, n / 2)):", "nunique() is an integer: k <= max(2, min(50, n / 2)) holds exactly when k <= max(2, min(50, n // 2))"),
        ("_positions_in", "pos = _gather(valid.get_indexer(pd.Index(names, dtype=None)), codes, -1, np.int32)  # (int32: 10 M rows take 40 MB)", "the names looked up are str (None only for an unused blank category): held as object or as pandas' str, get_indexer finds the same positions (a lone surrogate, which pyarrow's str cannot hold, is refused before as a hidden character)"),
        ("_positions_in", "pos = _gather(valid.get_indexer(pd.Index(names, )), codes, -1, np.int32)  # (int32: 10 M rows take 40 MB)", "the names looked up are str (None only for an unused blank category): held as object or as pandas' str, get_indexer finds the same positions (a lone surrogate, which pyarrow's str cannot hold, is refused before as a hidden character)"),
        ("_positions_in", "pos = _gather(valid.get_indexer(pd.Index(names, dtype=object)), codes, +1, np.int32)  # (int32: 10 M rows take 40 MB)", "_name_codes refuses every row without a name before: no code is -1, so the value gathered for -1 is never used"),
        ("_positions_in", "pos = _gather(valid.get_indexer(pd.Index(names, dtype=object)), codes, -2, np.int32)  # (int32: 10 M rows take 40 MB)", "_name_codes refuses every row without a name before: no code is -1, so the value gathered for -1 is never used"),
        ("_first_rows", "runs = np.searchsorted(starts, np.flatnonzero(differ) + 1, ) - 1", "differ[i] means rows i and i + 1 share a key, so i + 1 is never a run start: searchsorted finds the same run from either side"),
        ("_first_rows", "keep[order[1:][same]] = None", "numpy stores None in a bool array as False"),
        ("_validate_records", "keep, conflict = _first_rows(d.astype(np.int64) * len(models) - m, acc)", "m < len(models), so d * len(models) - m is one key per pair as + m is; the conflict reported and the rows kept follow the file order, not the keys' order (_stable_order sorts negative keys alike)"),
        ("_validate_records", 'f"{models[m[conflict[1]]]!r} on dataset {datasets[d[conflict[0]]]!r}; keep one record per "', "the conflicting rows share one key, so one model and one dataset: row 1 names the pair row 0 names"),
        ("_validate_records", 'f"{models[m[conflict[0]]]!r} on dataset {datasets[d[conflict[1]]]!r}; keep one record per "', "the conflicting rows share one key, so one model and one dataset: row 1 names the pair row 0 names"),
        *[("_plain_shape", line, "the pre-scan only takes the lines in other parts (each block's first line, or all of "
                                 "them at the end of the file): the same lines, counted the same")
          for line in ('cut = len(data) if not block else data.find(b"\\n") + 1',
                       'cut = len(data) if not block else data.rfind(b"XX\\nXX") + 1')],
        *[("_plain_shape", line, "_check_header strips every header cell: the header line's trailing CR or spaces, "
                                 "stripped here or not, give the same names")
          for line in ('first = part[:end if end >= 0 else len(part)].decode("utf-8-sig").rstrip(None)',
                       'first = part[:end if end >= 0 else len(part)].decode("utf-8-sig").lstrip("\\r")')],
        ("_plain_shape", 'first = part[:end if end >= 0 else len(part)].decode("UTF-8-SIG").rstrip("\\r")',
         "Python's codec names are case-insensitive"),
        ("_plain_shape", 'if not any(h.strip().rstrip("\\ufeff") for h in header):',
         "any() only asks whether a cell is empty once stripped: a cell of BOMs is empty stripped from either side"),
        ("_plain_shape", 'if not any(h.strip().lstrip("XX\\ufeffXX") for h in header):',
         "only a header of X's alone becomes blank: the file only goes to the line-by-line reader, which reads the same zoo (test_odd_files_read_as_the_careful_reader_reads_them)"),
        *[("_plain_shape", line, "end is 0 only for a blank first line, which returned None just above")
          for line in ('part = part[end + 1:] if end > 0 else b""', 'part = part[end + 1:] if end >= 1 else b""')],
        *[("_plain_shape", line, "the skipped lines are only counted ((skipped <= line).sum()): an empty list read as "
                                 "float64 counts the same, a non-empty one is int64 anyway")
          for line in ("return (header, rows, np.asarray(skipped, dtype=None)) if header is not None else None",
                       "return (header, rows, np.asarray(skipped, )) if header is not None else None")],
        ("_blank_lines", "maybe = np.flatnonzero((first == 32) | (first == 9) | (first != 13) | (first == 10))",
         "maybe is a prefilter: every candidate is checked by the strip below, so more candidates find the same blank lines"),
        *[("_blank_lines", line, "a line the pre-scan counts differently from the C reader makes their row counts "
                                 "differ: the file only goes to the line-by-line reader, which reads the same zoo (test_odd_files_read_as_the_careful_reader_reads_them)")
          for line in ("maybe = np.flatnonzero((first == 32) | (first == 9) | (first == 14) | (first == 10))",
                       "blank = [i for i in maybe if not part[starts[i]:ends[i]].strip(None)]",
                       'blank = [i for i in maybe if not part[starts[i]:ends[i]].strip(b"XX \\t\\rXX")]')],
        *[("_blank_lines", line, "the positions are numpy ints: int64 without a dtype; an empty list only adds nothing "
                                 "to the skipped lines")
          for line in ("return len(ends), np.asarray(blank, dtype=None)", "return len(ends), np.asarray(blank, )")],
        ("_read_plain", "blank &= np.array([not str(c).strip() for c in col.categories] + [False])[col.codes]  # (-1: a padded cell)",
         "a short row of blank cells kept here is skipped by the validation all the same: the same zoo and line "
         "numbers (test_odd_files_read_as_the_careful_reader_reads_them, 'a short line of blank cells')"),
        ("validate_scores", "name = {c: v[p[conflict[1]]] for c, (v, p) in ids.items()}",
         "the conflicting rows share their key, so their names: the second row names the same ones"),
        ("validate_scores", "ids[c], key = (np.asarray(valid, dtype=object), pos), key * len(valid) - pos",
         "key * n - pos (0 <= pos < n) is still one distinct key per combination of names, and _stable_order's floor "
         "modulo sorts negative keys as well: the same duplicates and conflicts"),
        *[("validate_scores", line, "the names are Python strings (object or str Index): the array is of objects either "
                                    "way, and the columns are made object Series")
          for line in ("ids[c], key = (np.asarray(valid, dtype=None), pos), key * len(valid) + pos",
                       "ids[c], key = (np.asarray(valid, ), pos), key * len(valid) + pos")],
        *[("_read_plain", line, "a table without rows: the validation gives its empty columns their types (object ids, "
                                "float values) whatever dtype they are read in (a header-only scores.csv reads the same "
                                "through both readers, dtypes and fingerprint)")
          for line in ("return _table({j: np.array([], dtype=None) for j in range(len(header))}, header, 0, where, file)",
                       "return _table({j: np.array([], ) for j in range(len(header))}, header, 0, where, file)")],
        ("Roles.from_json", "break", "log is the last key of the loop: break ends it as continue does"),
        ("_Where.line", "line = 2 - i  # the i-th line from line 2 on that is not skipped",
         "the iteration line = 2 + i + (skipped lines up to line) rises monotonically to the same first fixed point "
         "from any start at or below 2 + i"),
        *[("_empty_scores", line, "pandas gives an empty Series the object dtype by default") for line in (
            'return pd.DataFrame({"model": pd.Series(dtype=None), "dataset": pd.Series(dtype=object),',
            'return pd.DataFrame({"model": pd.Series(dtype=object), "dataset": pd.Series(dtype=None),',
            '"metric": pd.Series(dtype=None), "score": pd.Series(dtype=float)})')],
        ("_plain_shape", "block = fh.read(None)",
         "the whole file as one block instead of blocks cut at line ends: the same lines, counts and blank lines"),
        ('_parse', 'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine=None, encoding="utf-8",',
         _SAME_READ),
        ('_parse', 'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine="c", encoding=None,',
         _SAME_READ),
        ('_parse', 'reader = pd.read_csv(file, header=None, skiprows=1, names=list(range(width)), usecols=subset,',
         _SAME_READ),
        ('_parse', 'reader = pd.read_csv(file, sep=",", skiprows=1, names=list(range(width)), usecols=subset,',
         _SAME_READ),
        ('_parse', 'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, encoding="utf-8",',
         _SAME_READ),
        ('_parse', 'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine="c", index_col=False, '
                   'skip_blank_lines=True, chunksize=_PLAIN_CHUNK, low_memory=False)',
         _SAME_READ),
        ('_parse', 'index_col=False, chunksize=_PLAIN_CHUNK, low_memory=False)',
         _SAME_READ),
        ('_parse', 'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine="c", encoding="UTF-8",',
         _SAME_READ),
        ('_parse', 'subset = None  # (all columns: a wider line is an error, not cut)',
         _SUBSET),
        ('_parse', 'subset = sorted(dtype) if (len(dtype) < width) and False else None  # (all columns: a wider line '
                   'is an error, not cut)',
         _SUBSET),
        ('_parse', 'reader = pd.read_csv(file, sep=",", header=None, skiprows=1, names=list(range(width)), '
                   'usecols=None,',
         _SUBSET),
        ('_parse', 'reader = pd.read_csv(file, sep=",", header=None, skiprows=1, names=list(range(width)), '
                   'dtype=dtype, na_filter=False, quoting=csv.QUOTE_NONE, engine="c", encoding="utf-8",',
         _SUBSET),
        ('_parse', 'reader = pd.read_csv(file, sep=",", header=None, skiprows=1, names=None, usecols=subset,',
         _NAMES),
        ('_parse', 'reader = pd.read_csv(file, sep=",", header=None, skiprows=1, usecols=subset,',
         _NAMES),
        ('_parse', 'index_col=None, skip_blank_lines=True, chunksize=_PLAIN_CHUNK, low_memory=False)',
         _INDEX_COL),
        ('_parse', 'skip_blank_lines=True, chunksize=_PLAIN_CHUNK, low_memory=False)',
         _INDEX_COL),
        ('_parse', 'dtype=dtype, na_filter=False, engine="c", encoding="utf-8",',
         _NO_QUOTES),
        ('_parse', 'index_col=False, skip_blank_lines=True, chunksize=_PLAIN_CHUNK, )',
         _LOW_MEMORY),
        ('_parse', 'index_col=False, skip_blank_lines=True, chunksize=_PLAIN_CHUNK, low_memory=True)',
         _LOW_MEMORY),
        ('_parse', 'def _parse(file: Path, width: int, text: list[int], floats: list[int], *, as_object: bool = '
                   'True) -> dict:',
         _AS_OBJECT),
        ('_parse', 'if len(cats) or cats.inferred_type != "string":',
         _AS_OBJECT),
        ('_parse', 'if len(cats) and cats.inferred_type != "XXstringXX":',
         _AS_OBJECT),
        ('_parse', 'if len(cats) and cats.inferred_type != "STRING":',
         _AS_OBJECT),
        ('_parse', 'found, uniques = pd.factorize(col.to_numpy(dtype=None))',
         _OBJ_INDEX),
        ('_parse', 'codes[j].add(found, pd.Index(uniques, dtype=None))',
         _OBJ_INDEX),
        ('_parse', 'codes[j].add(found, pd.Index(uniques, ))',
         _OBJ_INDEX),
        ('_Codes.__init__', 'self.seen = pd.Index([], dtype=None)',
         _OBJ_INDEX),
        ('_Codes.__init__', 'self.seen = pd.Index([], )',
         _OBJ_INDEX),
        ('_parse', 'values[j].append(chunk[j].to_numpy(dtype=None))',
         _FLOAT),
        ('_parse', 'values[j].append(None)',
         _C_FALLBACK),
        ('_parse', 'out.update({j: np.concatenate(v) if (v) or True else np.array([], dtype=np.float64) for j, v in '
                   'values.items()})',
         _NONEMPTY),
        ('_parse', 'out.update({j: np.concatenate(v) if v else np.array(None, dtype=np.float64) for j, v in '
                   'values.items()})',
         _NONEMPTY),
        ('_parse', 'out.update({j: np.concatenate(v) if v else np.array([], dtype=None) for j, v in values.items()})',
         _NONEMPTY),
        ('_parse', 'out.update({j: np.concatenate(v) if v else np.array(dtype=np.float64) for j, v in values.items()})',
         _NONEMPTY),
        ('_parse', 'out.update({j: np.concatenate(v) if v else np.array([], ) for j, v in values.items()})',
         _NONEMPTY),
        ('read_scores', 'return _read_given(path, what, "model, dataset, metric, score", validate_scores, '
                        'numbers=None)',
         _SCORES_TEXT),
        ('read_scores', 'return _read_given(path, what, "model, dataset, metric, score", validate_scores, )',
         _SCORES_TEXT),
        ('read_scores', 'return _read_given(path, what, "model, dataset, metric, score", validate_scores, '
                        'numbers=("XXscoreXX",))',
         _SCORES_TEXT),
        ('read_scores', 'return _read_given(path, what, "model, dataset, metric, score", validate_scores, '
                        'numbers=("SCORE",))',
         _SCORES_TEXT),
        ('_read_plain', 'return _table({j: np.array([], dtype=object) for j in range(len(header))}, header, None, '
                        'where, file)',
         _N_UNUSED),
        ('_read_plain', 'return _table({j: np.array([], dtype=object) for j in range(len(header))}, header, 1, '
                        'where, file)',
         _N_UNUSED),

        *[("_read_plain", line, "the text of a debug log line (which tokenizer read a file)") for line in (
            'log.debug(None, file.name, type(exc).__name__, exc)',
            'log.debug("%s: read line by line (%s: %s)", None, type(exc).__name__, exc)',
            'log.debug("%s: read line by line (%s: %s)", file.name, None, exc)',
            'log.debug("%s: read line by line (%s: %s)", file.name, type(exc).__name__, None)',
            'log.debug(file.name, type(exc).__name__, exc)',
            'log.debug("%s: read line by line (%s: %s)", type(exc).__name__, exc)',
            'log.debug("%s: read line by line (%s: %s)", file.name, exc)',
            'log.debug("%s: read line by line (%s: %s)", file.name, type(exc).__name__, )',
            'log.debug("XX%s: read line by line (%s: %s)XX", file.name, type(exc).__name__, exc)',
            'log.debug("%S: READ LINE BY LINE (%S: %S)", file.name, type(exc).__name__, exc)',
            'log.debug("%s: read line by line (%s: %s)", file.name, type(None).__name__, exc)',
            "log.debug(None, file.name)",
            """log.debug("%s: read line by line (the C reader's rows differ from the pre-scan's)", None)""",
            "log.debug(file.name)",
            """log.debug("%s: read line by line (the C reader's rows differ from the pre-scan's)", )""",
            """log.debug("XX%s: read line by line (the C reader's rows differ from the pre-scan's)XX", file.name)""",
            """log.debug("%s: read line by line (the c reader's rows differ from the pre-scan's)", file.name)""",
            """log.debug("%S: READ LINE BY LINE (THE C READER'S ROWS DIFFER FROM THE PRE-SCAN'S)", file.name)""")],
        *[(fn, line, "the C reader then fails and the file is read again as text or line by line: the same table "
                     "(tests/test_fuzz_readers.py compares both tokenizers)") for fn, line in (
            ("_read_plain", "floats = [j for j, h in enumerate(header) if h or h in numbers]"),
            ("_read_plain", "floats = [j for j, h in enumerate(header) if h and h not in numbers]"),
            ("_read_plain", "columns = _parse(None, width, [j for j in range(width) if j not in floats], floats)"),
            ("_read_plain", "columns.update(_parse(file, width, redo, [], as_object=True) if (redo) or True else {})"),
            ("_Codes.categorical", "codes = np.concatenate(self.parts) if (self.parts) or True else "
                                   "np.array([], dtype=np.int32)"),
            ("_Codes.categorical", "codes = np.concatenate(self.parts) if self.parts else np.array(None, "
                                   "dtype=np.int32)"),
            ("read_scores", 'return validate_scores(_read_csv(file, numbers=None))'),
            ("read_scores", 'return validate_scores(_read_csv(file, ))'),
            ("read_scores", 'return validate_scores(_read_csv(file, numbers=("XXscoreXX",)))'),
            ("read_scores", 'return validate_scores(_read_csv(file, numbers=("SCORE",)))'))],
        ("_read_plain", "redo = [j for j, c in columns.items() if c is None or (j in floats and "
                        "np.isfinite(c).all())]",
         "finite numbers read again as text parse to the same float64 in the validation (the tokenizers agree)"),
        ("_read_plain", "blank[:] = None", "None assigned into a bool array is False"),
        ("_read_plain", "if not isinstance(col, pd.Categorical) and not blank.any():  # (a number is never blank)",
         "a blank row leaves its number empty, so that column is read again as text (a categorical) first"),
        ("_read_plain", "columns, where, n_rows = {j: c[~blank] for j, c in columns.items()}, where.without(rows), "
                        "n_rows + len(rows)",
         "_table uses the row count only for a table without named columns, which a plain file never is"),
        ("_read_plain", "return _table(columns, header, None, where, file)",
         "_table uses the row count only for a table without named columns, which a plain file never is"),
        *[("_Codes.add", line, _OBJ_INDEX) for line in (
            "self.seen = self.seen.append(pd.Index(uniques[new], dtype=None))",
            "self.seen = self.seen.append(pd.Index(uniques[new], ))")],
        *[("_Codes.categorical", line, "an empty codes array is only used with no rows (from_codes of nothing)")
          for line in ("codes = np.concatenate(self.parts) if self.parts else np.array([], dtype=None)",
                       "codes = np.concatenate(self.parts) if self.parts else np.array(dtype=np.int32)",
                       "codes = np.concatenate(self.parts) if self.parts else np.array([], )")],
        *[("_stable_order", line, why) for line, why in (
            ("n = None", "n is only tested for truth and None is falsy: the stable argsort, the same order"),
            ("if n and int(key.max()) <= (1 << 62) // n:", "at the bound key * n + n stays below 2^63"),
            ("if n and int(key.max()) < (1 << 62) / n:", "the same comparison in floats away from the bound"),
            ("if n and int(key.max()) < (1 >> 62) // n:", "always the stable argsort: the same order"),
            ("return np.sort(key * n + np.arange(n, dtype=None)) % n", "np.arange of an int is int64"),
            ("return np.sort(key * n + np.arange(n, )) % n", "np.arange of an int is int64"),
            ('return np.argsort(key, kind="STABLE")', "numpy reads the sort kind case-insensitively"),
            ("if n and int(key.max()) < (2 << 62) // n:", "below 2^63 / n, key * n + (n - 1) still fits in int64"),
            ("if n and int(key.max()) < (1 << 63) // n:", "below 2^63 / n, key * n + (n - 1) still fits in int64"))],
    ],
    "recommender": [
        *[("Recommender._columns", line, "only a lazily loaded Recommender takes this path, and load sets path_")
          for line in ("what = f\"model file {str(getattr(self, 'path_', None))!r}\"",
                       "what = f\"model file {str(getattr(self, 'path_', ))!r}\"",
                       "what = f\"model file {str(getattr(self, 'path_', 'XX?XX'))!r}\"")],
        ("Recommender._compute_columns", "unrecorded=self._unrecorded, )",
         "the intervals and P(best) then computed are left out of the columns when not asked for"),
        ("Recommender._compute_columns", "unrecorded=self._unrecorded, given=given, joint=self._joint_model())",
         "the intervals and P(best) then computed are left out of the columns when not asked for"),
        *[("Recommender._compute_columns", line, "answer builds the same joint model itself (joint_model(engine, "
                                                  "calibration, unrecorded)): the same draws, made again")
          for line in ("unrecorded=self._unrecorded, uncertainty=uncertainty, given=given, joint=None)",
                       "unrecorded=self._unrecorded, uncertainty=uncertainty, given=given, )")],
        *[("Recommender._compute_columns", line, "a numpy str array instead of an object one: the same names (no "
                                                  "name holds a NUL, which the readers refuse)")
          for line in ('"model": np.tile(np.array(list(self.data_.model_ids), dtype=None), len(names)),',
                       '"model": np.tile(np.array(list(self.data_.model_ids), ), len(names)),',
                       '"dataset": np.repeat(np.array(list(names), dtype=None), n_models),',
                       '"dataset": np.repeat(np.array(list(names), ), n_models),')],
        *[("Recommender._rank_columns", line, "the known column is a float array already")
          for line in ('known = np.asarray(cols["known"], dtype=None)', 'known = np.asarray(cols["known"], )')],
    ],
    "answer": [
        ("joint_model", 'seed = int(getattr(engine, "seed", None) or 0)', "a missing seed reads as 0 either way (None or 0)"),
        ("joint_model", "cold = np.zeros(engine.n_models_, None) if unrecorded is None else np.asarray(unrecorded, bool)",
         "JointModel reads the cold flags as bool: float zeros are no model cold, as False"),
        ("joint_model", "cold = np.zeros(engine.n_models_, ) if unrecorded is None else np.asarray(unrecorded, bool)",
         "JointModel reads the cold flags as bool: float zeros are no model cold, as False"),
        ("joint_model", "cold = np.zeros(engine.n_models_, bool) if unrecorded is None else np.asarray(unrecorded, None)",
         "JointModel reads the cold flags as bool (np.asarray(cold_models, dtype=bool)) whatever their dtype here"),
        ("joint_model", "cold = np.zeros(engine.n_models_, bool) if unrecorded is None else np.asarray(unrecorded, )",
         "JointModel reads the cold flags as bool (np.asarray(cold_models, dtype=bool)) whatever their dtype here"),
        ("answer", "known[i, cols] = np.fromiter(given[i].values(), dtype=None)",
         "np.fromiter without a dtype reads Python floats as float64, as dtype=float does"),
        ("answer", 'posts = ""',
         "posts is only read where the joint distribution answered (a list then) or as a truth value (empty either way)"),
        ("answer", "need = range(len(block)) if (use_joint or posteriors) or True else rows_given",
         "the rows without results get a posterior that nothing reads (posteriors are returned only when asked): "
         "the same answer, at more cost"),
        ("answer", "out.p_best = calibration.p_best(pred, known, None, unrecorded=unrecorded)",
         "without n_known, Calibration.p_best counts the recorded cells of known: the same counts"),
        ("answer", "out.p_best_independent = consistent(calibration.p_best(pred, known, None, unrecorded=unrecorded),",
         "without n_known, Calibration.p_best counts the recorded cells of known: the same counts"),
        ("answer", "out.p_best_independent = consistent(calibration.p_best(pred, known, unrecorded=unrecorded),",
         "without n_known, Calibration.p_best counts the recorded cells of known: the same counts"),
        ("answer", "inputs = jm.inputs(block.take(np.asarray(list(need), dtype=np.int64))) if (jm.kriging) or True else None",
         "JointModel.inputs returns None itself for a model that does not krige"),
        ("answer", "inputs = jm.inputs(block.take(np.asarray(list(need), dtype=None))) if jm.kriging else None",
         "a list of Python ints is int64 without a dtype, and an empty one takes no row either way"),
        ("answer", "inputs = jm.inputs(block.take(np.asarray(list(need), ))) if jm.kriging else None",
         "a list of Python ints is int64 without a dtype, and an empty one takes no row either way"),
        ("answer", "stored[i, np.fromiter(given[i].keys(), dtype=np.int64)] = None",
         "None assigned into a float array is stored as NaN"),
        ("consistent", "lift = ~rec & (upper > best[:, None]) & (out <= P_FLOOR)",
         "a cell at exactly P_FLOOR is set to P_FLOOR again, and a row that sums to 1 is divided by its sum"),
    ],
    "joint": [
        ('condition', 'news = None  # (results that only repeat stored records change nothing)',
         "None is falsy as False: `None or x` is x, and `if None and ...` does not join"),
        ('_win_shares', 'out = np.bincount(first, minlength=X.shape[1]).astype(None)',
         "bincount's counts as float64 without a dtype, as with float"),
        ('condition', 'for j, y in zip(np.asarray(models).tolist(), np.asarray(values, dtype=None).tolist()):',
         _FLOAT_IN),
        ('condition', 'for j, y in zip(np.asarray(models).tolist(), np.asarray(values, ).tolist()):',
         _FLOAT_IN),
        ('condition', 'K = np.array(sorted(stored), dtype=None)',
         'sorted Python ints make an int64 array without a dtype'),
        ('condition', 'K = np.array(sorted(stored), )',
         'sorted Python ints make an int64 array without a dtype'),
        ('condition', 'cells = Cells(np.zeros(len(K), np.int64), K, y, (1, n_models), assume_sorted=None)',
         'the known models are sorted (sorted(stored)): Cells with or without the flag hold the same records'),
        ('condition', 'cells = Cells(np.zeros(len(K), np.int64), K, y, (1, n_models), )',
         'the known models are sorted (sorted(stored)): Cells with or without the flag hold the same records'),
        ('condition', 'cells = Cells(np.zeros(len(K), None), K, y, (1, n_models), assume_sorted=True)',
         'np.zeros without a dtype is float64 zeros: the same row 0 for every record (Cells reads rows as int64)'),
        ('condition', 'cells = Cells(np.zeros(len(K), ), K, y, (1, n_models), assume_sorted=True)',
         'np.zeros without a dtype is float64 zeros: the same row 0 for every record (Cells reads rows as int64)'),
        ('condition', 'cells = Cells(np.zeros(len(K), np.int64), K, y, (2, n_models), assume_sorted=True)',
         "a second row without records does not change the first row's spread (the one read)"),
        ('condition', 'cells = Cells(np.zeros(len(K), np.int64), K, y, (1, n_models), assume_sorted=False)',
         'the known models are sorted (sorted(stored)): Cells with or without the flag hold the same records'),
        ('stream_normals', 'shift = (_mix((cols / _TABLE_WIDTH).astype(np.uint64) * _GOLD + np.uint64(salt) * _M1 + _GOLD)',
         'cols are non-negative: the float quotient cast to uint64 is the integer quotient (the block)'),
        ('stream_normals', 'return np.take(_normal_table(int(seed)).reshape(None), flat)',
         'np.take without an axis reads the table flattened whatever its shape'),
        ('stream_normals', 'cols = np.asarray(cols, dtype=None)',
         _INT_COLS),
        ('stream_normals', 'return np.take(_normal_table(int(seed)).reshape(-2), flat)',
         'np.take without an axis reads the table flattened whatever its shape'),
        ('stream_normals', 'cols = np.asarray(cols, )',
         _INT_COLS),
        ('_hashed_normals', 'u1 = ((x >> np.uint64(32)).astype(None) + 0.5) / 2.0 ** 32',
         'astype(None) is float64, as np.float64'),
        ('_hashed_normals', 'u2 = (x & np.uint64(0xFFFFFFFF)).astype(None) / 2.0 ** 32',
         'astype(None) is float64, as np.float64'),
        ('JointParams._values', 'for reach in range(len(POOLS)):',
         'a reach of 0 holds only the pool itself, already found below MIN_POOL (or empty): the next reach decides'),
        ('JointParams.from_state', 'p = np.asarray(arrays[f"{prefix}params"], dtype=None)',
         'the parameters are read with float() / int() / bool() one by one and checked as numbers either way'),
        ('JointParams.from_state', 'p = np.asarray(arrays[f"{prefix}params"], )',
         'the parameters are read with float() / int() / bool() one by one and checked as numbers either way'),
        ('JointParams.independent', 'return cls(pools, 2.0, "row", float(calibration.noise_scale), seed, False)',
         'the independent fallback (kriging False) reads neither rho nor the scale: only the pools, the factor and the seed'),
        ('JointParams.independent', 'return cls(pools, 1.0, "XXrowXX", float(calibration.noise_scale), seed, False)',
         'the independent fallback (kriging False) reads neither rho nor the scale: only the pools, the factor and the seed'),
        ('JointParams.independent', 'return cls(pools, 1.0, "ROW", float(calibration.noise_scale), seed, False)',
         'the independent fallback (kriging False) reads neither rho nor the scale: only the pools, the factor and the seed'),
        ('JointParams.independent', 'return cls(pools, None, "row", float(calibration.noise_scale), seed, False)',
         'the independent fallback (kriging False) reads neither rho nor the scale: only the pools, the factor and the seed'),
        ('JointParams.independent', 'return cls(pools, 1.0, None, float(calibration.noise_scale), seed, False)',
         'the independent fallback (kriging False) reads neither rho nor the scale: only the pools, the factor and the seed'),
        ('JointParams.pool', 'cache = self.__dict__.setdefault(None, {})',
         'the pools are cached under whichever key: the same pool, built once'),
        ('JointParams.pool', 'cache = self.__dict__.setdefault("XX_pool_cacheXX", {})',
         'the pools are cached under whichever key: the same pool, built once'),
        ('JointParams.pool', 'cache = self.__dict__.setdefault("_POOL_CACHE", {})',
         'the pools are cached under whichever key: the same pool, built once'),
        ('JointParams.to_state', 'arrays = {f"{prefix}pool_{k}": np.asarray(v, dtype=None) for k, v in self.pools.items()}',
         'the pools are float arrays already (sorted residuals): the same arrays'),
        ('JointParams.to_state', 'arrays = {f"{prefix}pool_{k}": np.asarray(v, ) for k, v in self.pools.items()}',
         'the pools are float arrays already (sorted residuals): the same arrays'),
        ('Pool.excess', 'i = np.searchsorted(self.values, t, )',
         'values equal to t add max(z - t, 0) = 0 whichever side they are counted on'),
        *[('Pool.crps', line, _FLOAT_IN) for line in ('z = np.asarray(z, dtype=None)', 'z = np.asarray(z, )')],
        *[('_Uncertainty.kriging', line, "rho is never negative (the calibration's level variance, at least 1e-3 of "
                                         "kappa, or 0 for universal kriging): at rho = 0 the level's weights are "
                                         "sqrt(0) b = 0, and adding zero draws changes no draw")
          for line in ('lev = math.sqrt(rho) * b / (1.0 + rho * q) if (rho > 0) or True else None',
                       'lev = math.sqrt(rho) * b / (1.0 + rho * q) if rho >= 0 else None')],
        ('Pool.excess', 't = np.asarray(t, dtype=None)',
         _FLOAT_IN),
        ('Pool.excess', 't = np.asarray(t, )',
         _FLOAT_IN),
        ('Pool.transform', 'np.clip(i, 1, len(_GRID) - 1, out=i)',
         "the table's first and last entries equal their neighbours (the normal grid's ends lie beyond the pool's first and last plotting positions for pools of fewer than 5e8 values): clipping one entry further in reads the same value"),
        ('Pool.transform', 'np.clip(i, 0, len(_GRID) - 2, out=i)',
         "the table's first and last entries equal their neighbours (the normal grid's ends lie beyond the pool's first and last plotting positions for pools of fewer than 5e8 values): clipping one entry further in reads the same value"),
        ('RowPosterior.candidates', 'cand = np.ones(self.n_models, ) if among is None else np.asarray(among, bool)',
         'a float mask or array of ones selects the same models as a bool one (flatnonzero)'),
        ('RowPosterior.candidates', 'cand = np.ones(self.n_models, bool) if among is None else np.asarray(among, None)',
         'a float mask or array of ones selects the same models as a bool one (flatnonzero)'),
        ('RowPosterior.candidates', 'cand = np.ones(self.n_models, bool) if among is None else np.asarray(among, )',
         'a float mask or array of ones selects the same models as a bool one (flatnonzero)'),
        ('RowPosterior.candidates', 'cand = np.ones(self.n_models, None) if among is None else np.asarray(among, bool)',
         'a float mask or array of ones selects the same models as a bool one (flatnonzero)'),
        ('RowPosterior.draws', 'cols = np.asarray(cols, dtype=None)',
         _INT_COLS),
        ('RowPosterior.draws', 'cols = np.asarray(cols, )',
         _INT_COLS),
        ('RowPosterior.errors', 'g = self._draw(cols, self.n_draws if (n is None) and False else n)',
         'every draw function reads n None as all its draws (n_draws)'),
        ('RowPosterior.errors', 'cols = np.asarray(cols, dtype=None)',
         _INT_COLS),
        ('RowPosterior.errors', 'cols = np.asarray(cols, )',
         _INT_COLS),
        ('RowPosterior.expected_improvement', 'cols = np.asarray(cols, dtype=None)',
         _INT_COLS),
        ('RowPosterior.expected_improvement', 'cols = np.asarray(cols, )',
         _INT_COLS),
        ('_Kriged.standard_draws', 'E = None',
         "the draws from the rows of L equal those from every model's draws (the same Matheron rule and streams, within rounding; test_dense_conditional_draws_are_matherons_rule_written_out): when E is made is a speed choice"),
        ('_Uncertainty.__init__', 'self.V, self.psi = np.asarray(cov.V, float), np.asarray(cov.psi, )',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.__init__', 'self.S, self._L = _psd(np.asarray(cov.S, None))',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.__init__', 'self.S, self._L = _psd(np.asarray(cov.S, ))',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.__init__', 'self.V, self.psi = np.asarray(cov.V, None), np.asarray(cov.psi, float)',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.__init__', 'self.V, self.psi = np.asarray(cov.V, ), np.asarray(cov.psi, float)',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.__init__', 'self.V, self.psi = np.asarray(cov.V, float), np.asarray(cov.psi, None)',
         "the engines' covariances hold float arrays already"),
        ('_Uncertainty.block', 'return out + hit * self.psi[rows][:, None] if (hit.any()) or True else out',
         'hit holds no True there: adding hit * psi adds zeros'),
        ('_Uncertainty.block', 'return (rows[:, None] == cols[None, :]).astype(None)',
         'astype(None) is float64, as float'),
        ('_Uncertainty.draws', 'cols = np.asarray(cols, dtype=None)',
         _INT_COLS),
        ('_Uncertainty.draws', 'cols = np.asarray(cols, )',
         _INT_COLS),
        ('_Uncertainty.full', 'if getattr(None, "_E", None) is None and self._asked * 8 >= self.n:',
         "when every model's draws are made once is a speed choice: the draws from them equal those from the rows of L (within rounding)"),
        ('_Uncertainty.full', 'if getattr(self, "XX_EXX", None) is None and self._asked * 8 >= self.n:',
         "when every model's draws are made once is a speed choice: the draws from them equal those from the rows of L (within rounding)"),
        ('_Uncertainty.full', 'if getattr(self, "_e", None) is None and self._asked * 8 >= self.n:',
         "when every model's draws are made once is a speed choice: the draws from them equal those from the rows of L (within rounding)"),
        ('_Uncertainty.full', 'if getattr(self, "_E", None) is None and self._asked * 9 >= self.n:',
         "when every model's draws are made once is a speed choice: the draws from them equal those from the rows of L (within rounding)"),
        ('_Uncertainty.kriging', 'A[np.diag_indices(len(K))] -= 1e-9 * max(float(np.trace(A)) / max(len(K), 1), 1e-12)',
         "the ridge (1e-9 of the known models' mean variance) only keeps the solve regular: its sign or size moves answers by about 1e-9, below any tolerance a caller has"),
        ('_Uncertainty.kriging', 'A[np.diag_indices(len(K))] += 1e-9 * max(float(np.trace(A)) / max(len(K), 2), 1e-12)',
         "the ridge (1e-9 of the known models' mean variance) only keeps the solve regular: its sign or size moves answers by about 1e-9, below any tolerance a caller has"),
        ('_Uncertainty.kriging', 'A[np.diag_indices(len(K))] += 1e-9 * max(float(np.trace(A)) / max(len(K), 1), 1.000000000001)',
         "the ridge (1e-9 of the known models' mean variance) only keeps the solve regular: its sign or size moves answers by about 1e-9, below any tolerance a caller has"),
        ('_Uncertainty.kriging', 'C = ""',
         'C is read only on the low-rank path: the dense path never reads it'),
    ],
    "scale": [
        ("fit_additive", "if np.abs(b - b_old).max() <= 1e-9:",
         "a largest move of exactly 1e-9 (a float sum landing on that decimal) is the only case that differs"),
        ("_plain_standardization", "return Standardization(np.where(ok, cells.row_mean(cells.y), np.nan), np.where(ok, sd, 1.0), ratio=None)",
         "Standardization reads ratio as a truth value: None is False"),
        ("_plain_standardization", "return Standardization(np.where(ok, cells.row_mean(cells.y), np.nan), np.where(ok, sd, 2.0), ratio=False)",
         "where not ok the offset is NaN: the value is NaN whatever the scale"),
        ("_plain_standardization", "ok = (k >= min_known) & (sd >= 0)",
         "a dataset of spread 0 then gets its mean and a scale of 0: (y - mean) / 0 = 0 / 0 is NaN, as its NaN offset "
         "gives"),
        ("pool_log_sd", "emp = np.log(np.where(sd >= 1e-4, sd, 1e-4))", "at exactly 1e-4 both sides give 1e-4"),
        ("fit_ridge", "w = np.ones(len(X)) if w is None else np.asarray(w, None)",
         "the weights are record counts or floats: as an int or a float array they weigh the same in float products"),
        ("fit_ridge", "w = np.ones(len(X)) if w is None else np.asarray(w, )",
         "the weights are record counts or floats: as an int or a float array they weigh the same in float products"),
        ("fit_ridge", "return np.linalg.lstsq(A, Xa.T @ (w * y), )[0]",
         "numpy 2's default rcond is None (machine precision times the larger dimension), as given"),
        ("row_sd", "var = cells.row_sum(dev * dev) / np.maximum(k, 2)",
         "for k = 1 the one deviation is 0 (0 / 1 = 0 / 2), for k = 0 the sum is 0; from 2 on max(k, 2) = k"),
        ("fit_log_spread", "return fit_ridge(X, y, w=w / w.mean(), ), np.array([y.min(), y.max()])",
         "fit_ridge's default alpha is 1.0"),
        ("shrunk_location_scale", "multi = n >= 1",
         "a dataset of one record adds 0 to the deviations and n - 1 = 0 to the degrees of freedom"),
        ("shrunk_location_scale",
         "zoo_var = float(dev2[multi].sum() / max((n[multi] - 1).sum(), 1)) if (multi.any()) or True else 0.0",
         "without a dataset of two records the sum is 0 over max(0, 1): 0.0, as the else gives"),
        ("standardize_rows", "S = np.asarray(S, dtype=None)",
         "an int matrix is all finite and becomes float in np.where(ok, S, 0.0): the same z-scores"),
        ("standardize_rows", "S = np.asarray(S, )",
         "an int matrix is all finite and becomes float in np.where(ok, S, 0.0): the same z-scores"),
        ("standardize_rows", "std = np.sqrt((dev ** 2).sum(1) / np.maximum(n, 2))",
         "for n = 1 the deviation is 0 (0 / 1 = 0 / 2), for n = 0 the sum is 0; from 2 on max(n, 2) = n"),
        ("standardize_rows", "return np.where(good[:, None], dev / np.where(good, std, 2.0)[:, None], 0.0)",
         "the rows that are not good are 0 whatever they are divided by (the outer where)"),
    ],
    "sequential": [
        *[("paired", line, "a two-sided sign test's p is a dyadic rational (k / 2^(n - 1)), never 0.05 exactly")
          for line in ('"verdict": "win" if p <= 0.05 and wins > losses else "loss" if p < 0.05 and losses > wins else "tie"}',
                       '"verdict": "win" if p < 0.05 and wins > losses else "loss" if p <= 0.05 and losses > wins else "tie"}')],
        *[("paired", line, "p < 0.05 needs wins and losses to differ (a sign test of equal counts is 1)")
          for line in ('"verdict": "win" if p < 0.05 and wins >= losses else "loss" if p < 0.05 and losses > wins else "tie"}',
                       '"verdict": "win" if p < 0.05 and wins > losses else "loss" if p < 0.05 and losses >= wins else "tie"}')],
        *[(fn, line, "pandas reads sort=None as False") for fn, line in (
            ("_per_target", 'return df.groupby(["engine", "dataset"], sort=None)[cols].mean().reset_index()'),
            ("policy_means", 'out = per.groupby("engine", sort=None)[cols].mean()'),
            ("policy_means", 'out.insert(0, "targets", per.groupby("engine", sort=None).size())'))],
        *[("random_expectation", line, "binomial coefficients over an int: the same float weights; accuracies are floats")
          for line in ("w = np.array([math.comb(i - 1, n - 1) for i in range(1, N + 1)], None) / math.comb(N, n)",
                       "w = np.array([math.comb(i - 1, n - 1) for i in range(1, N + 1)], ) / math.comb(N, n)",
                       "v = np.sort(np.asarray(truth, dtype=None))", "v = np.sort(np.asarray(truth, ))")],
        *[("policy_means", line, "DataFrame.insert aligns the counts on the engine index: their order does not matter")
          for line in ('out.insert(0, "targets", per.groupby("engine", ).size())',
                       'out.insert(0, "targets", per.groupby("engine", sort=True).size())')],
        ("sequential_folds", "known[g] = None", "None assigned into a bool array is False"),
        *[("sequential_folds", line, "np.full of the int -1 is int64 without a dtype")
          for line in ("group=np.full(data.n_datasets, -1, dtype=None)))", "group=np.full(data.n_datasets, -1, )))")],
        *[("sequential_folds", line, "the targets are indices (ints): int64 without a dtype")
          for line in ("targets = logo_targets(data) if targets is None else np.asarray(targets, dtype=None)",
                       "targets = logo_targets(data) if targets is None else np.asarray(targets, )")],
    ],
    "suite": [
        ("_bootstrap", 'return float("NAN"), float("nan")', _NAN),
        ("_bootstrap", 'return float("nan"), float("NAN")', _NAN),
        ("_bootstrap", "v = np.asarray(values, dtype=None)", "the values are floats (or 0 / 1 hits): float64 either way"),
        ("_bootstrap", "v = np.asarray(values, )", "the values are floats (or 0 / 1 hits): float64 either way"),
        ("_bootstrap", "idx = np.random.default_rng(seed).integers(len(v), size=(n, len(v)))",
         "integers(k) draws from [0, k), as integers(0, k), from the same stream"),
        ("pbest_table", 'h = g[g["n_hidden"] >= 0]',
         "a dataset without hidden cells adds 0 to the covered and to the hidden counts (and a bin of only such "
         "datasets is 0 / 0, NaN, as an empty bin)"),
        ("pbest_table",
         'row[f"coverage {b}"] = float(hb["covered"].sum() / hb["n_hidden"].sum()) if (len(hb)) or True else float("nan")',
         "an empty bin's sums are numpy zeros: 0 / 0 is NaN, as given"),
        ("pbest_table",
         'row[f"coverage {b}"] = float(hb["covered"].sum() / hb["n_hidden"].sum()) if len(hb) else float("NAN")', _NAN),
        ("sequential_table", 't = tests.get(None) or paired(res, "plan", other, n)',
         "the paired test computed again: the same numbers"),
        ("sign_test", "if n == 1:",
         "with no pair (n = 0) the sum is comb(0, 0) / 1 = 1, capped at 1.0, as returned; with one, 2 * 1/2 = 1.0"),
        ("suite_table", ")", "pivot_table's default aggfunc is the mean"),
        ("suite_table", "diff = (paired[default] - paired[best]).dropna() / (-1 if lower else 1)",
         "dividing by -1 or 1 is multiplying by it"),
        *[("suite_table", line, "a two-sided sign test's p is a dyadic rational (k / 2^(n - 1)), never 0.05 exactly")
          for line in ('verdict = "win" if p <= 0.05 and wins > losses else "loss" if p < 0.05 and losses > wins else "tie"',
                       'verdict = "win" if p < 0.05 and wins > losses else "loss" if p <= 0.05 and losses > wins else "tie"')],
        *[("suite_table", line, "p < 0.05 needs wins and losses to differ (a sign test of equal counts is 1)")
          for line in ('verdict = "win" if p < 0.05 and wins >= losses else "loss" if p < 0.05 and losses > wins else "tie"',
                       'verdict = "win" if p < 0.05 and wins > losses else "loss" if p < 0.05 and losses >= wins else "tie"')],
        *[("zoos_with_wins", line, "the zoos are returned sorted whatever order the rows are visited in")
          for line in ('for (zoo, _), g in table.groupby(["zoo", "protocol"], sort=True):',
                       'for (zoo, _), g in table.groupby(["zoo", "protocol"], sort=None):',
                       'for (zoo, _), g in table.groupby(["zoo", "protocol"], ):')],
    ],
    "conditioning": [
        ("conditioning_summary", 'for b, g in [("all", rv), *rv.groupby("bin", sort=None)]:',
         "pandas reads sort=None as False"),
        ("conditioning_summary", 'for v, rv in rows.groupby("variant", sort=None):', "pandas reads sort=None as False"),
    ],
}
