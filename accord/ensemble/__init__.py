"""Ensembles: combine several models' outputs before, during and after inference.

The three families of the survey "Merge, Ensemble, and Cooperate!" (Lu et al., arXiv 2407.06089):

- **before inference**: :class:`Router` (rules or an LLM classifier pick one model per task) and
  :class:`Cascade` (FrugalGPT, arXiv 2305.05176: cheapest model first, escalate weak answers);
- **after inference**: :func:`vote` (majority vote; self-consistency, arXiv 2203.11171),
  :func:`mbr` (minimum Bayes risk), :func:`best_of_n`, :func:`pairwise_rank` (LLM-Blender,
  arXiv 2306.02561), :func:`fuse` (GenFuser / Mixture-of-Agents), and the ready-made graphs
  :func:`self_consistency` and :func:`verified_search` (greedy first, more samples only where
  checks fail, chosen by checks and behaviour clusters);
- **during inference**: :class:`TokenEnsemble`, which combines local models' next-token
  distributions step by step (shared vocabulary, or UniTE's top-k union across tokenizers,
  arXiv 2410.03777) and is itself a backend.

Every method is a plain async function (or object) *and* a graph node (:class:`VoteNode`,
:class:`MBRNode`, :class:`BestOfNNode`, :class:`PairwiseRankNode`, :class:`FuseNode`,
:class:`Router`, :class:`Cascade`), and reports what it cost. Caveat: importing this package
imports neither torch nor transformers; :class:`TokenEnsemble` imports them when it first
runs.
"""

from __future__ import annotations

from accord.ensemble._best_of_n import Reward, SetReward, best_of_n
from accord.ensemble._candidates import Candidate, Candidates
from accord.ensemble._cascade import Cascade, CascadeResult, Stage, StageResult
from accord.ensemble._extract import (
    EXTRACTORS,
    Extractor,
    extract_answer,
    extract_choice,
    extract_code,
    extract_exact,
    extract_number,
    extract_text,
    normalise_answer,
    resolve_extractor,
)
from accord.ensemble._fuse import fuse
from accord.ensemble._mbr import mbr
from accord.ensemble._nodes import (
    BestOfNNode,
    FuseNode,
    MBRNode,
    PairwiseRankNode,
    SampleNode,
    VoteNode,
)
from accord.ensemble._pairwise import pairwise_rank
from accord.ensemble._results import Fusion, Selection, VoteResult
from accord.ensemble._router import Routed, RouteDecision, Router, Rule
from accord.ensemble._self_consistency import self_consistency
from accord.ensemble._token import EnsembleOutput, TokenEnsemble
from accord.ensemble._utility import UTILITIES, Utility, chrf, exact_match, judge_utility, token_f1
from accord.ensemble._verified import (
    VerifiedSearchNode,
    checked_reward,
    select_checked,
    verified_search,
)
from accord.ensemble._vote import tally, vote

__all__ = [
    # before inference
    "Router",
    "Rule",
    "RouteDecision",
    "Routed",
    "Cascade",
    "Stage",
    "CascadeResult",
    "StageResult",
    # after inference: functions
    "vote",
    "tally",
    "mbr",
    "best_of_n",
    "pairwise_rank",
    "fuse",
    "self_consistency",
    "verified_search",
    "select_checked",
    "checked_reward",
    # after inference: nodes
    "VoteNode",
    "MBRNode",
    "BestOfNNode",
    "PairwiseRankNode",
    "FuseNode",
    "SampleNode",
    "VerifiedSearchNode",
    # results and candidates
    "VoteResult",
    "Selection",
    "Fusion",
    "Candidate",
    "Candidates",
    # extractors, utilities, rewards
    "Extractor",
    "EXTRACTORS",
    "extract_number",
    "extract_choice",
    "extract_code",
    "extract_text",
    "extract_exact",
    "Utility",
    "UTILITIES",
    "exact_match",
    "token_f1",
    "chrf",
    "judge_utility",
    "Reward",
    "SetReward",
    # during inference
    "TokenEnsemble",
    "EnsembleOutput",
    "extract_answer",
    "normalise_answer",
    "resolve_extractor",
]
