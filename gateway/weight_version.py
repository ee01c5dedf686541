"""The engine's own weight version on an answer, which the stamped policy version follows.

Engines that report which weights generated an answer:

* SGLang (0.5.23, chat answers): top-level `metadata.weight_version` (the version when the
  request finished; "default" until a refit call such as `/update_weights_from_disk` sets
  `weight_version`) and `metadata.weight_versions`, spans over output-token indexes
  (`{"version", "start", "end"}`; its msgspec struct is array-like, `[version, start, end]`,
  which is read too).
* vLLM >= 0.33 with `return_weight_versions: true`: per choice `weight_versions`, a list of
  `{"version", "start", "end"}` (half-open output-token ranges).

Where an answer carries one, the gateway stamps it (`x-policy-version`, `policy_version`)
instead of its own counter (`/admin/policy_version`, the fallback). A generation that spanned
two versions (a `keep` pause across a refit) also gets `policy_versions`, every version in
order, and the `x-policy-versions` header.
"""

from __future__ import annotations

from typing import Any

from gateway.context import RequestContext


def _span_versions(spans: Any) -> list[str]:
    out: list[str] = []
    if isinstance(spans, list):
        for span in spans:
            if isinstance(span, dict):
                version = span.get("version")
            elif isinstance(span, list) and len(span) == 3:  # msgspec's array_like form
                version = span[0]
            else:
                version = None
            if version is not None and not isinstance(version, (dict, list, bool)):
                text = str(version)
                if text not in out:
                    out.append(text)
    return out


def engine_versions(answer: dict[str, Any]) -> list[str]:
    """The distinct weight versions an answer reports, oldest first; [] when it says none."""
    versions: list[str] = []
    metadata = answer.get("metadata")
    if isinstance(metadata, dict):
        versions = _span_versions(metadata.get("weight_versions"))
        final = metadata.get("weight_version")
        known = isinstance(final, (str, int)) and not isinstance(final, bool)
        if known and str(final) not in versions:
            versions.append(str(final))
    choices = answer.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                for version in _span_versions(choice.get("weight_versions")):
                    if version not in versions:
                        versions.append(version)
    return versions


def stamp_engine_version(answer: dict[str, Any], ctx: RequestContext) -> None:
    """Make the request's policy version the engine's, when the answer reports it."""
    versions = engine_versions(answer)
    if not versions:
        return
    ctx.policy_version = versions[-1]
    if len(versions) > 1:
        ctx.policy_versions = versions
