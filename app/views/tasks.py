"""Tasks page: what each task measures. The spec (tasks/*.yaml: dataset, parameters, main metric, version,
hash, license), its section of docs/tasks.md (the anchor each board's header links to), and which spec
versions the store's runs were made with."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from boards import anchor, spec_files, task_docs, task_spec
from common import code, plain, query, snapshot, store_state
from widgets import show_table, url_choice

st.title("Tasks")
st.caption(
    "A task is declarative: one YAML file in `tasks/`, validated by `harness.schema.TaskSpec` "
    "(docs/tasks.md). Every run records the spec's version and hash."
)
specs = spec_files()
has_store = store_state().kind == "ok"
snap = snapshot() if has_store else None
stored = query(snap, "task_overview")["task"].tolist() if snap is not None else []
names = stored + sorted(set(specs) - set(stored))  # the store's tasks first
if not names:
    st.info("No task specs were found and the store holds no runs.")
    st.stop()
task = url_choice("Task", names, key="task", what="tasks")
spec = task_spec(task)
st.header(plain(task))
st.caption(f"docs/tasks.md#{plain(anchor(task))}")
if spec is not None:
    st.markdown(plain(spec.description))
    source = spec.dataset
    facts = [
        f"**dataset** {code(source.name)} ({plain(source.kind)}, revision {plain(source.revision)})",
        f"**adapter** {code(spec.adapter)}",
        f"**main metric** {code(spec.main_metric)}",
        f"**version** {spec.version}",
        f"**spec hash** {code(spec.spec_hash()[:12])}",
    ]
    if spec.license:
        facts.append(f"**license** {plain(spec.license)}")
    if spec.models_trained_on:
        facts.append("**models trained on** " + ", ".join(code(t) for t in spec.models_trained_on))
    st.markdown(" · ".join(facts))
    with st.expander("Parameters (recorded with every run)"):
        st.json(dict(spec.parameters), expanded=True)
else:
    st.info(f"No spec for {code(task)} in this repository's `tasks/`: the store's runs name it.")
docs = task_docs(task)
if docs:
    st.subheader("Documentation")
    st.markdown(docs)  # the repository's own docs (not submitted text)
else:
    st.caption(f"docs/tasks.md has no section for {code(task)}.")
if snap is not None and task in stored:
    st.subheader("Runs in the store")
    versions = query(snap, "task_versions", task)
    table = pd.DataFrame(
        {
            "version": versions["task_version"],
            "spec hash": versions["spec_hash"].str[:12],
            "adapter": versions["adapter"],
            "splits": versions["splits"].map(lambda s: ", ".join(s) if s is not None else ""),
            "runs": versions["runs"],
            "models": versions["models"],
        }
    )
    show_table(table, key="versions")
    st.page_link("views/ranking.py", label=f"Leaderboard of {plain(task)}", icon=":material/leaderboard:",
                 query_params={"task": task})  # fmt: skip
