"""The judge: facts observed (``observe``), expressions evaluated
(``evaluate``), quantifiers applied (``quantify``) and results recorded
(``result``), in one place for sequential, explored and native runs alike."""

from cowdsl.judge.evaluate import Judge, evaluate
from cowdsl.judge.observe import StateObservation, Unsupported, View, term_text, view
from cowdsl.judge.quantify import Decision, check_execution, decide
from cowdsl.judge.result import Check, Result, StepRecord

__all__ = ["Check", "Decision", "Judge", "Result", "StateObservation", "StepRecord", "Unsupported", "View",
           "check_execution", "decide", "evaluate", "term_text", "view"]
