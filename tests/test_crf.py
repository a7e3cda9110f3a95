"""LinearChainCRF against brute-force enumeration and against pytorch-crf."""

import itertools
import math
import random
import time

import pytest
import torch

import crf_clner
from conftest import tiny_bert_config
from crf_clner import LinearChainCRF, _forward_backward, _LogPartition, scheme_constraints
from inference_clner import split_label
from modeling_clner import CLNERConfig, CLNERForTokenClassification

BIO = ["O", "B-a", "I-a", "B-b", "I-b"]
BIOES = ["O", "B-a", "I-a", "E-a", "S-a"]


def random_crf(labels, scheme=None, seed=0, scale=1.0):
    torch.manual_seed(seed)
    crf = LinearChainCRF(len(labels), scheme_constraints(labels, scheme) if scheme else None).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, scale)
    return crf


def random_batch(bsz, seq_len, num_tags, seed=0, lengths=None):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(bsz, seq_len, num_tags, generator=g, dtype=torch.float64) * 2
    if lengths is None:
        lengths = torch.randint(0, seq_len + 1, (bsz,), generator=g)
    lengths = torch.as_tensor(lengths)
    mask = torch.arange(seq_len)[None, :] < lengths[:, None]
    tags = torch.randint(0, num_tags, (bsz, seq_len), generator=g)
    return emissions, mask, tags


def brute_force(crf, emissions, mask):
    """Score every path of every row: returns per row a dict path -> score (constrained moves give -inf)."""
    with torch.no_grad():
        start, trans, end = (x.detach() for x in crf._scores(torch.float64))
    out = []
    for b in range(emissions.shape[0]):
        n = int(mask[b].sum())
        scores = {}
        for path in itertools.product(range(crf.num_tags), repeat=n):
            if n == 0:
                scores[path] = 0.0
                continue
            s = start[path[0]] + end[path[-1]] + sum(emissions[b, t, path[t]] for t in range(n))
            s = s + sum(trans[path[t - 1], path[t]] for t in range(1, n))
            scores[path] = float(s)
        out.append(scores)
    return out


def logsumexp(values):
    values = [v for v in values if v != -math.inf]
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


CASES = [(None, BIO), ("BIO", BIO), ("BIOES", BIOES)]


@pytest.mark.parametrize("scheme,labels", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_against_brute_force(scheme, labels, seed):
    crf = random_crf(labels, scheme, seed)
    emissions, mask, tags = random_batch(6, 5, len(labels), seed, lengths=[5, 3, 1, 0, 4, 2])
    paths = brute_force(crf, emissions, mask)

    log_z = crf.log_partition(emissions, mask)
    best = crf.viterbi_decode(emissions, mask)
    marg = crf.marginals(emissions, mask)
    marg_t = crf.marginals(emissions, mask, temperature=0.3)
    for b, scores in enumerate(paths):
        n = int(mask[b].sum())
        if n == 0:
            assert log_z[b].item() == 0.0
            assert (best[b] == -1).all()
            assert marg[b].abs().sum().item() == 0.0
            continue
        ref_z = logsumexp(scores.values())
        assert log_z[b].item() == pytest.approx(ref_z, abs=1e-9)
        ref_path = max(scores, key=scores.get)
        assert best[b, :n].tolist() == list(ref_path)
        assert (best[b, n:] == -1).all()
        # marginals: p(y_t = c) = sum over paths through c at t
        ref_marg = torch.zeros(n, len(labels), dtype=torch.float64)
        for path, s in scores.items():
            if s == -math.inf:
                continue
            for t, c in enumerate(path):
                ref_marg[t, c] += math.exp(s - ref_z)
        torch.testing.assert_close(marg[b, :n], ref_marg, atol=1e-9, rtol=1e-7)
        assert marg[b, n:].abs().sum().item() == 0.0
        ref_t = torch.softmax(torch.log(ref_marg) / 0.3, dim=-1)
        torch.testing.assert_close(marg_t[b, :n], ref_t, atol=1e-7, rtol=1e-6)
        # NLL of a valid path (the best one) and of a random one when it is allowed
        gold = torch.full((1, 5), 0, dtype=torch.long)
        gold[0, :n] = torch.tensor(ref_path)
        nll = crf.nll(emissions[b : b + 1], gold, mask[b : b + 1])
        assert nll.item() == pytest.approx(ref_z - scores[ref_path], abs=1e-9)


def test_nll_matches_brute_force_random_tags_unconstrained():
    crf = random_crf(BIO, None, 3)
    emissions, mask, tags = random_batch(8, 4, len(BIO), 3)
    paths = brute_force(crf, emissions, mask)
    nll = crf.nll(emissions, tags, mask)
    for b, scores in enumerate(paths):
        n = int(mask[b].sum())
        ref = logsumexp(scores.values()) - scores[tuple(tags[b, :n].tolist())] if n else 0.0
        assert nll[b].item() == pytest.approx(ref, abs=1e-9)


def test_constraints_are_respected_and_switchable():
    crf = random_crf(BIO, "BIO", 4)
    with torch.no_grad():  # make the forbidden O -> I-a move very attractive
        crf.transitions[0, 2] = 50.0
        crf.start_transitions[2] = 50.0
    emissions, mask, _ = random_batch(16, 7, len(BIO), 4, lengths=[7] * 16)
    paths = crf.viterbi_decode(emissions, mask)
    for row in paths.tolist():
        assert row[0] not in (2, 4)
        for a, b in zip(row, row[1:]):
            if b == 2:
                assert a in (1, 2)
            if b == 4:
                assert a in (3, 4)
    marg = crf.marginals(emissions, mask)
    assert marg[:, 0, 2].max().item() < 1e-12  # I-a cannot start
    crf.use_constraints = False
    assert (crf.viterbi_decode(emissions, mask)[:, 0] == 2).any()
    # a gold path that breaks the scheme is an error, not an infinite loss
    crf.use_constraints = True
    bad = torch.zeros(1, 7, dtype=torch.long)
    bad[0, 3] = 2  # O -> I-a
    with pytest.raises(ValueError, match="violate"):
        crf.nll(emissions[:1], bad, mask[:1])


def test_scheme_constraints_tables():
    start, trans, end = scheme_constraints(BIOES, "BIOES")
    idx = {label: i for i, label in enumerate(BIOES)}
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert trans[idx["B-a"], idx["I-a"]] and trans[idx["B-a"], idx["E-a"]]
    assert not trans[idx["B-a"], idx["O"]] and not trans[idx["E-a"], idx["I-a"]]
    assert trans[idx["S-a"], idx["B-a"]] and not trans[idx["O"], idx["E-a"]]
    _, trans, _ = scheme_constraints(["O", "B-a", "I-a", "B-b", "I-b"], "BIO")
    assert not trans[1, 4] and trans[1, 2] and trans[2, 2] and not trans[0, 2] and trans[4, 3]
    with pytest.raises(ValueError, match="BIOES"):
        scheme_constraints(BIOES, "BIO")


def test_matches_pytorch_crf():
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(0)
    num_tags = 13
    ref = torchcrf.CRF(num_tags, batch_first=True)
    ours = LinearChainCRF(num_tags)
    with torch.no_grad():
        ours.start_transitions.copy_(ref.start_transitions)
        ours.end_transitions.copy_(ref.end_transitions)
        ours.transitions.copy_(ref.transitions)
    for seed, (bsz, seq_len) in enumerate([(1, 20), (16, 33), (32, 128)]):
        emissions, mask, tags = random_batch(bsz, seq_len, num_tags, seed)
        emissions = emissions.float()
        lengths = mask.sum(1)
        lengths[0] = seq_len  # torchcrf needs the first time step of every row on
        mask = torch.arange(seq_len)[None] < lengths.clamp_min(1)[:, None]
        llh = ref(emissions, tags, mask, reduction="none")
        torch.testing.assert_close(-ours.nll(emissions, tags, mask), llh, atol=1e-4, rtol=1e-5)
        decoded = ours.viterbi_decode(emissions, mask)
        for row, ref_row, n in zip(decoded.tolist(), ref.decode(emissions, mask), mask.sum(1).tolist()):
            assert row[:n] == ref_row


def test_gradients():
    crf = random_crf(BIO, "BIO", 5, scale=0.5)
    emissions, mask, tags = random_batch(4, 6, len(BIO), 5, lengths=[6, 4, 1, 0])
    valid = crf.viterbi_decode(emissions, mask).clamp_min(0)  # a path the constraints allow
    emissions.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: crf.nll(e, valid, mask), (emissions,))
    assert torch.autograd.gradcheck(lambda e: crf.marginals(e, mask, temperature=0.3), (emissions,))

    # the closed-form backward of log Z against autograd through the plain recursion, parameters included
    params = tuple(
        p.detach().clone().requires_grad_(True) for p in (crf.start_transitions, crf.transitions, crf.end_transitions)
    )
    allowed = (crf.allowed_start, crf.allowed_transitions, crf.allowed_end)
    weights = torch.randn(4, dtype=torch.float64)

    def constrained():
        return [p.masked_fill(~a, -math.inf) for p, a in zip(params, allowed)]

    ref = _forward_backward(emissions, mask, *constrained(), need_beta=False)[2]
    ref = torch.where(mask[:, 0], ref, torch.zeros_like(ref))  # as log_partition does for all-masked rows
    g_ref = torch.autograd.grad((ref * weights).sum(), (emissions, *params))
    fast = _LogPartition.apply(emissions, mask, *constrained())
    fast = torch.where(mask[:, 0], fast, torch.zeros_like(fast))
    g_fast = torch.autograd.grad((fast * weights).sum(), (emissions, *params))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_numerically_safe_long_and_masked():
    crf = random_crf(BIO, "BIO", 6)
    crf.float()
    emissions = torch.randn(3, 512, len(BIO)) * 20
    mask = torch.zeros(3, 512, dtype=torch.bool)
    mask[0] = True
    mask[1, :300] = True  # row 2 all masked
    tags = crf.viterbi_decode(emissions, mask).clamp_min(0)
    emissions.requires_grad_(True)
    loss = crf.nll(emissions, tags, mask)
    assert torch.isfinite(loss).all() and loss[2].item() == 0.0 and (loss[:2] >= -1e-3).all()
    marg = crf.marginals(emissions, mask, temperature=0.3)
    (loss.sum() + marg.sum()).backward()
    assert torch.isfinite(emissions.grad).all()
    assert torch.isfinite(marg).all()
    torch.testing.assert_close(marg[0].sum(-1), torch.ones(512))
    assert marg[1, 300:].sum().item() == 0.0


def test_bad_input_errors():
    crf = LinearChainCRF(5)
    e = torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match="num_tags|tags"):
        crf.log_partition(torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="mask shape"):
        crf.log_partition(e, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="contiguous"):
        crf.log_partition(e, torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"tags must be in \[0, 5\)"):
        crf.nll(e, torch.full((2, 4), 7), torch.ones(2, 4, dtype=torch.bool))


def test_crf_module_reset_matches_pytorch_crf_init():
    crf = LinearChainCRF(7)
    for p in crf.parameters():
        assert p.min() >= -0.1 and p.max() <= 0.1


torchcrf = pytest.importorskip("torchcrf")


# --------------------------------------------------------------------------------------------------------------
# scheme_constraints against the O(C^2) loop it replaces
# --------------------------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------------
# The CRF at scale and in float32: many labels are refused before anything of size C^2 is allocated, scheme
# constraints are vectorised (the same tables as the loop they replace), and float32 gradients stay as accurate as
# pytorch-crf's when emissions are large (references: pytorch-crf in float64, and brute-force enumeration).


def loop_scheme_constraints(labels, scheme="BIO"):
    """The former implementation, kept verbatim as the reference: one Python test per (i, j) pair."""
    scheme = scheme.upper()
    parts = [split_label(label) for label in labels]
    n = len(parts)
    if scheme == "BIO":
        bad = [lab for lab, (p, _) in zip(labels, parts) if p in "ES"]
        if bad:
            raise ValueError(f"Labels {bad} are not BIO tags; use scheme='BIOES'.")
    start = torch.tensor([p in ("O", "B", "S") for p, _ in parts], dtype=torch.bool)
    if scheme == "BIO":
        end = torch.ones(n, dtype=torch.bool)
    else:
        end = torch.tensor([p in ("O", "E", "S") for p, _ in parts], dtype=torch.bool)
    trans = torch.zeros(n, n, dtype=torch.bool)
    for i, (p_i, t_i) in enumerate(parts):
        for j, (p_j, t_j) in enumerate(parts):
            if scheme == "BIO":
                ok = p_j in ("O", "B") or (p_j == "I" and p_i in ("B", "I") and t_i == t_j)
            else:
                inside = p_i in ("B", "I")
                if p_j in ("I", "E"):
                    ok = inside and t_i == t_j
                else:
                    ok = not inside
            trans[i, j] = ok
    return start, trans, end


# types that collide with prefixes, 'O', each other after parsing, or are empty; prefixes beyond B/I/E/S (BILOU's
# L/U read as E/S), bare types, '_'-joined and lower-case prefixes (read as O), 'O' itself
TYPES = ["a", "b", "PER", "O", "B", "I-a", "a-b", "", "é", "B-a", " "]


BIO_PREFIXES = ["B-", "I-"]


BIOES_PREFIXES = ["B-", "I-", "E-", "S-", "L-", "U-"]


ODD = ["O", "PER", "B_PER", "b-a", "B-", "I-", "-a", "BI-a", "O-a", "", "B", "I"]


def random_labels(rng, scheme, n):
    prefixes = BIO_PREFIXES if scheme == "BIO" else BIOES_PREFIXES
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            out.append(rng.choice(ODD))
        else:
            out.append(rng.choice(prefixes) + rng.choice(TYPES))
    return out


def assert_same_tables(labels, scheme):
    got, ref = scheme_constraints(labels, scheme), loop_scheme_constraints(labels, scheme)
    for name, a, b in zip(("allowed_start", "allowed_transitions", "allowed_end"), got, ref):
        assert a.dtype == torch.bool and a.shape == b.shape, name
        assert torch.equal(a, b), f"{name} differs for {labels} under {scheme}"


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("seed", range(8))
def test_scheme_constraints_match_loop_on_random_labels(scheme, seed):
    rng = random.Random(seed)
    for n in (0, 1, 2, 3, 7, 40, 150):
        assert_same_tables(random_labels(rng, scheme, n), scheme)


ADVERSARIAL = [
    ([], "BIO"),
    (["O"], "BIO"),
    (["O"], "BIOES"),
    (["I-a"], "BIO"),
    (["E-a", "S-a"], "BIOES"),
    (["O", "O", "B-a", "B-a", "I-a", "I-a"], "BIO"),  # duplicates
    (["B-O", "I-O", "O", "I-"], "BIO"),  # the type 'O' is not the tag O; 'I-' is bare (read as O)
    (["B-B-a", "I-B-a", "B-a", "I-a", "I-I-a"], "BIO"),  # types that contain prefixes
    (["PER", "LOC", "I-PER", "B-LOC"], "BIO"),  # bare types are O
    (["B_PER", "I_PER", "b-per", "i-per", "I-per"], "BIO"),  # no '-' prefix: O
    (["U-a", "L-a", "B-a", "I-a", "E-a", "S-a", "O"], "BIOES"),  # BILOU read as BIOES
    (["B-a", "I-a", "E-b", "S-b", "I-b", "L-a"], "BIOES"),
    (["I-a", "I-b", "E-a", "E-b", "B-", "S-", "O"], "BIOES"),
    ([f"{p}-{t}" for t in "xyz" for p in "BIES"] + ["O"], "BIOES"),
]


@pytest.mark.parametrize("labels,scheme", ADVERSARIAL)
def test_scheme_constraints_match_loop_on_adversarial_labels(labels, scheme):
    assert_same_tables(labels, scheme)
    assert_same_tables(tuple(labels), scheme.lower())  # any sequence; the scheme's case does not matter


@pytest.mark.parametrize("labels", [["O", "E-a"], ["S-a", "B-a"], ["O", "U-x"], ["L-x"]])
def test_scheme_constraints_refuse_bioes_tags_under_bio_as_before(labels):
    with pytest.raises(ValueError, match="not BIO tags") as ref:
        loop_scheme_constraints(labels, "BIO")
    with pytest.raises(ValueError, match="not BIO tags") as got:
        scheme_constraints(labels, "BIO")
    assert str(got.value) == str(ref.value)
    with pytest.raises(ValueError, match="Unknown tagging scheme"):
        scheme_constraints(labels, "IOB1")


def test_scheme_constraints_on_2000_labels_take_under_a_second():
    bio = ["O"] + [f"{p}-type{i}" for i in range(1000) for p in "BI"]
    bioes = ["O"] + [f"{p}-type{i}" for i in range(500) for p in "BIES"]
    for labels, scheme in ((bio, "BIO"), (bioes, "BIOES")):
        t0 = time.perf_counter()
        start, trans, end = scheme_constraints(labels, scheme)
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.0, f"{len(labels)} labels ({scheme}) took {elapsed:.2f}s"
        assert trans.shape == (len(labels), len(labels))
        # spot checks against the rules (the loop reference would take seconds at this size)
        assert start[0] and end[0] and trans[0, 1] and not trans[0, 2]
        if scheme == "BIO":
            assert int(trans.sum()) == 2001 * 1001 + 2000  # every row allows O and the B-s; B-/I-t allow I-t
        else:
            assert int(trans.sum()) == 1001 * 1001 + 1000 * 2  # closed tags allow O/B/S; B-/I-t allow I-t, E-t
    # the same tables as the loop on a sample of the same labels
    assert_same_tables(bio[:301], "BIO")
    assert_same_tables(bioes[:301], "BIOES")


# --------------------------------------------------------------------------------------------------------------
# Too many labels: refused before any (C, C) allocation
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture
def allocation_tripwire(monkeypatch):
    """Fail, instead of allocating, on any tensor of 10^8 elements or more (400 MB in float32), so that code which
    allocates before refusing fails fast here rather than taking the machine's memory."""
    limit = 10**8

    def guarded(fn):
        def wrapper(*args, **kwargs):
            shape = args[0] if args and isinstance(args[0], (tuple, list, torch.Size)) else args
            if shape and all(isinstance(s, int) for s in shape) and math.prod(shape) >= limit:
                raise AssertionError(f"torch.{fn.__name__}{tuple(shape)} allocated before the label count was refused")
            return fn(*args, **kwargs)

        return wrapper

    for name in ("empty", "zeros", "ones", "full", "rand", "randn"):
        monkeypatch.setattr(torch, name, guarded(getattr(torch, name)))


def assert_refusal_message(message, n):
    assert f"{n:,} labels" in message
    assert f"limit of {crf_clner.MAX_NUM_TAGS:,}" in message
    assert "transition matrix" in message
    gigabytes = 4.0 * n * n / 1e9
    assert f"{gigabytes:,.1f} GB" in message


def test_crf_refuses_50000_labels_fast_and_before_allocating(allocation_tripwire):
    n = 50_000
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        LinearChainCRF(n)
    assert time.perf_counter() - t0 < 0.25
    assert_refusal_message(str(err.value), n)
    assert "10.0 GB" in str(err.value)

    labels = ["O"] + [f"{p}-t{i}" for i in range(n // 2) for p in "BI"]
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        scheme_constraints(labels, "BIO")
    assert time.perf_counter() - t0 < 0.25
    assert_refusal_message(str(err.value), len(labels))


def test_label_limit_is_a_named_constant_and_its_boundary(allocation_tripwire):
    limit = crf_clner.MAX_NUM_TAGS
    assert isinstance(limit, int) and 1000 <= limit <= 10_000
    crf = LinearChainCRF(limit)
    assert crf.transitions.shape == (limit, limit)
    labels = ["O"] + [f"{p}-t{i}" for i in range((limit - 1) // 2) for p in "BI"]
    assert scheme_constraints(labels, "BIO")[1].shape == (len(labels), len(labels))
    with pytest.raises(ValueError, match=f"{limit + 1:,} labels"):
        LinearChainCRF(limit + 1)
    with pytest.raises(ValueError, match=f"{limit + 1:,} labels"):
        scheme_constraints(["O"] * (limit + 1), "BIO")


def test_model_with_50000_labels_is_refused_by_the_crf(allocation_tripwire):
    labels = ["O"] + [f"{p}-t{i}" for i in range(25_000) for p in "BI"]
    config = CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(labels)))
    with pytest.raises(ValueError) as err:
        CLNERForTokenClassification(config)
    assert_refusal_message(str(err.value), len(labels))


# --------------------------------------------------------------------------------------------------------------
# float32 gradients with large emissions, against pytorch-crf
# --------------------------------------------------------------------------------------------------------------
BIO9 = ["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c", "B-d", "I-d"]


def make_pair(num_tags, scheme, seed):
    """A pytorch-crf CRF and ours with the same scores; under a scheme ours has hard constraints (-inf) and
    pytorch-crf the same moves at -1e4 (no path through one weighs anything in float64 at this scale)."""
    torch.manual_seed(seed)
    peer = torchcrf.CRF(num_tags, batch_first=True)
    constraints = scheme_constraints(BIO9, scheme) if scheme else None
    ours = LinearChainCRF(num_tags, constraints)
    with torch.no_grad():
        for name in ("start_transitions", "transitions", "end_transitions"):
            getattr(ours, name).copy_(getattr(peer, name))
        if scheme:
            allowed_start, allowed_trans, _ = constraints
            peer.start_transitions.masked_fill_(~allowed_start, -1e4)
            peer.transitions.masked_fill_(~allowed_trans, -1e4)
    return peer, ours


def large_batch(num_tags, seed, padded, bsz=8, seq_len=256, std=100.0):
    g = torch.Generator().manual_seed(1000 + seed)
    emissions = torch.randn(bsz, seq_len, num_tags, generator=g, dtype=torch.float64) * std
    lengths = torch.randint(1, seq_len + 1, (bsz,), generator=g) if padded else torch.full((bsz,), seq_len)
    lengths[0] = seq_len  # pytorch-crf needs the first step of every row on
    mask = torch.arange(seq_len)[None] < lengths[:, None]
    tags = torch.randint(0, num_tags, (bsz, seq_len), generator=g)
    weights = torch.rand(bsz, generator=g, dtype=torch.float64) + 0.5
    return emissions, mask, tags, weights


def nll_grads(crf, emissions, tags, mask, weights, dtype):
    """Gradients of sum_b w_b NLL_b for (emissions, transitions, start, end), as float64, and the NLLs."""
    crf = crf.to(dtype)
    crf.zero_grad()
    e = emissions.detach().to(dtype).clone().requires_grad_(True)
    if isinstance(crf, LinearChainCRF):
        nll = crf.nll(e, tags, mask)
    else:
        nll = -crf(e, tags, mask, reduction="none")
    (nll * weights.to(dtype)).sum().backward()
    grads = (e.grad, crf.transitions.grad, crf.start_transitions.grad, crf.end_transitions.grad)
    return [g.double() for g in grads], nll.detach().double()


GRADS = ("emissions", "transitions", "start_transitions", "end_transitions")


@pytest.mark.parametrize("num_tags,scheme,std", [(2, None, 100.0), (9, None, 100.0), (9, "BIO", 20.0)])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("seed", range(3))
def test_float32_gradients_with_large_emissions_as_accurate_as_pytorch_crf(num_tags, scheme, std, padded, seed):
    """C in {2, 9}, T = 256, emission std 100 (20 under BIO constraints, see
    `test_known_limit_float32_constraints_with_emission_gaps_beyond_float32_range`): against a float64 reference
    (pytorch-crf), the float32 gradients' largest error is at most twice pytorch-crf's own float32 error on the same
    inputs (errors within 8 float32 ulps of the gradient's scale count as exact)."""
    peer, ours = make_pair(num_tags, scheme, seed)
    emissions, mask, tags, weights = large_batch(num_tags, seed, padded, std=std)
    if scheme:  # a gold path the constraints allow
        tags = ours.double().viterbi_decode(emissions, mask).clamp_min(0)
    ref, ref_nll = nll_grads(peer, emissions, tags, mask, weights, torch.float64)
    ours64, ours64_nll = nll_grads(ours, emissions, tags, mask, weights, torch.float64)
    peer32, _ = nll_grads(peer, emissions, tags, mask, weights, torch.float32)
    ours32, ours32_nll = nll_grads(ours, emissions, tags, mask, weights, torch.float32)

    torch.testing.assert_close(ours64_nll, ref_nll, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(ours32_nll, ref_nll, rtol=1e-5, atol=1e-2)  # the log-likelihoods agree
    for name, r, o64, p32, o32 in zip(GRADS, ref, ours64, peer32, ours32):
        assert (o64 - r).abs().max().item() < 1e-7 * max(1.0, r.abs().max().item()), name
        err_peer = (p32 - r).abs().max().item()
        err_ours = (o32 - r).abs().max().item()
        floor = 8 * torch.finfo(torch.float32).eps * max(1.0, r.abs().max().item())
        assert err_ours <= max(2 * err_peer, floor), (
            f"{name}: float32 error {err_ours:.3g} vs pytorch-crf's {err_peer:.3g}"
        )


@pytest.mark.xfail(strict=True, reason="known limit of the scaled exp-space recursion, see the docstring")
def test_known_limit_float32_constraints_with_emission_gaps_beyond_float32_range():
    """Known limit, not fixed here: with hard constraints, a tag whose allowed predecessors all lie more than ~87
    nats (float32; ~708 in float64) below the step's best state gets the recursion's floor (`clamp_min(tiny)`)
    instead of its true, smaller, score; when a later emission lifts that tag by more than the gap, log Z comes out
    too large. Under BIO at emission std 50 (T = 256) the float32 NLL is off by ~50 nats, where pytorch-crf (a
    per-column log-sum-exp, with the forbidden moves at -1e4) stays within 1e-2. An exact fix needs the maximum over
    each column's allowed predecessors at every step ((B, C, C) work per step, pytorch-crf's cost), or a float64
    recursion (which moves the limit to ~708 nats)."""
    peer, ours = make_pair(9, "BIO", 0)
    emissions, mask, _, weights = large_batch(9, 0, padded=False, std=50.0)
    tags = ours.double().viterbi_decode(emissions, mask).clamp_min(0)
    _, ref_nll = nll_grads(peer, emissions, tags, mask, weights, torch.float64)
    _, ours32_nll = nll_grads(ours, emissions, tags, mask, weights, torch.float32)
    torch.testing.assert_close(ours32_nll, ref_nll, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("num_tags", [2, 9])
def test_float32_marginals_with_large_emissions(num_tags):
    """Marginals (the CL-KL teacher) in float32 against pytorch-crf's float64 ones (d log Z / d emissions), at any
    temperature: each step is normalised, so the error does not grow with the sequence."""
    peer, ours = make_pair(num_tags, None, 0)
    emissions, mask, tags, _ = large_batch(num_tags, 0, padded=True)
    e = emissions.clone().requires_grad_(True)
    (-peer.double()(e, tags, mask, reduction="sum")).backward()
    onehot = torch.nn.functional.one_hot(tags, num_tags).double() * mask[..., None]
    ref = onehot + e.grad  # d(-llh)/de = marginals - onehot
    got = ours.float().marginals(emissions.float(), mask).double()
    assert (got - ref).abs().max().item() < 2e-5
    for temperature in (0.3, 2.0):
        ref_t = torch.softmax(torch.log(ref.clamp_min(1e-300)) / temperature, -1) * mask[..., None]
        got_t = ours.marginals(emissions.float(), mask, temperature).double()
        assert (got_t - ref_t).abs().max().item() < 2e-5


# --------------------------------------------------------------------------------------------------------------
# The closed-form gradients against brute-force enumeration
# --------------------------------------------------------------------------------------------------------------
def brute_force_marginals(crf, emissions, mask):
    """Per row: expected counts of each start, transition, end and (t, tag) under the CRF, by enumeration."""
    start, trans, end = (x.detach() for x in crf._scores(torch.float64))
    num_tags = crf.num_tags
    out = []
    for b in range(emissions.shape[0]):
        n = int(mask[b].sum())
        em = torch.zeros(emissions.shape[1], num_tags, dtype=torch.float64)
        tr = torch.zeros(num_tags, num_tags, dtype=torch.float64)
        st = torch.zeros(num_tags, dtype=torch.float64)
        en = torch.zeros(num_tags, dtype=torch.float64)
        if n:
            paths = list(itertools.product(range(num_tags), repeat=n))
            scores = torch.tensor(
                [
                    float(
                        start[p[0]]
                        + end[p[-1]]
                        + sum(emissions[b, t, p[t]] for t in range(n))
                        + sum(trans[p[t - 1], p[t]] for t in range(1, n))
                    )
                    for p in paths
                ],
                dtype=torch.float64,
            )
            probs = torch.softmax(scores, 0)
            for p, w in zip(paths, probs.tolist()):
                st[p[0]] += w
                en[p[-1]] += w
                for t in range(n):
                    em[t, p[t]] += w
                for t in range(1, n):
                    tr[p[t - 1], p[t]] += w
        out.append((em, tr, st, en))
    return out


@pytest.mark.parametrize(
    "scheme,dtype,scale",
    [
        (None, torch.float64, 1.0),
        ("BIO", torch.float64, 3.0),
        (None, torch.float32, 100.0),
        ("BIO", torch.float32, 100.0),
    ],
)
def test_log_partition_gradients_match_brute_force(scheme, dtype, scale):
    labels = ["O", "B-a", "I-a"]
    torch.manual_seed(7)
    crf = LinearChainCRF(3, scheme_constraints(labels, scheme) if scheme else None).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn_like(p).to(dtype))  # values float32 holds exactly, when it is float32
    g = torch.Generator().manual_seed(7)
    emissions = (torch.randn(5, 6, 3, generator=g, dtype=torch.float64) * scale).to(dtype).double()
    mask = torch.arange(6)[None] < torch.tensor([6, 4, 1, 0, 5])[:, None]
    weights = torch.tensor([1.0, 0.5, 2.0, 3.0, 0.25], dtype=torch.float64)
    expected = brute_force_marginals(crf, emissions, mask)

    crf = crf.to(dtype)
    e = emissions.detach().to(dtype).clone().requires_grad_(True)
    (crf.log_partition(e, mask) * weights.to(dtype)).sum().backward()
    ref_em = torch.stack([x[0] for x in expected]) * weights[:, None, None]
    ref_tr, ref_st, ref_en = (sum(w * x[k] for w, x in zip(weights.tolist(), expected)) for k in (1, 2, 3))
    tol = dict(atol=1e-10, rtol=1e-8) if dtype == torch.float64 else dict(atol=5e-5, rtol=5e-5)
    torch.testing.assert_close(e.grad.double(), ref_em, **tol)
    torch.testing.assert_close(crf.transitions.grad.double(), ref_tr, **tol)
    torch.testing.assert_close(crf.start_transitions.grad.double(), ref_st, **tol)
    torch.testing.assert_close(crf.end_transitions.grad.double(), ref_en, **tol)
