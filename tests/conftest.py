import pytest

from sopilot_pipelines.core import synth


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """The gold and every trainee variant, rendered once per test session (with nuisance)."""
    return synth.render_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture(scope="session")
def embedded(suite):
    """Builtin embeddings of every video in the suite, computed lazily and cached."""
    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.video import ClipSettings

    embedder, settings, cache = get_embedder("builtin"), ClipSettings(), {}

    def get(name):
        if name not in cache:
            cache[name] = embed_video(suite[name].path, settings, embedder)
        return cache[name]

    return get
