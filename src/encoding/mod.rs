//! Writers of the metric exposition formats. A leaf: it imports nothing of the crate, so
//! that the collectors, the exporter's own metrics and the process metrics can all write
//! their families through it while `exposition` assembles the body from them.

mod text;

pub(crate) use text::{Encoder, Histogram, MetricType, CONTENT_TYPE};
