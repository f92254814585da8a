"""The floor: a trivial Streamlit page the render bench serves beside the dashboard, in the
same run, so that page times are reported as ratios to what Streamlit itself needs on this
machine at this moment (../shared/tools/render-floor: a title, six metrics, one Plotly line of
288 points and a 30 x 8 dataframe)."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

st.set_page_config(layout="wide")
st.title("Floor")
for index, column in enumerate(st.columns(6)):
    column.metric(f"m{index}", index)
rng = np.random.default_rng(0)
points = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=288, freq="5min"),
                       "v": rng.random(288)})
st.plotly_chart(px.line(points, x="t", y="v"))
st.dataframe(pd.DataFrame(rng.random((30, 8))))
