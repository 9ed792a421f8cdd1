//! The result schema of DESIGN.md 5 and its construction from a merged [`Partial`].

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::error::AttributionError;
use crate::options::{ModelId, Options};
use crate::partial::Partial;

/// Relative tolerance of the conservation check reported with every model.
pub const CONSERVATION_TOLERANCE: f64 = 1e-9;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AttributionResult {
    pub summary: Summary,
    pub options: Options,
    /// Keyed by model id, in the order of the models list.
    #[serde(serialize_with = "models_as_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, ModelResult>))]
    pub models: Vec<ModelResult>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rows: u64,
    pub journeys: f64,
    pub converting_journeys: f64,
    pub null_journeys: f64,
    pub conversions: f64,
    pub conversion_value: f64,
    pub unattributed_conversions: f64,
    pub unattributed_value: f64,
    /// Distinct channels among the journeys' touches.
    pub channels: usize,
    pub truncated_journeys: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    #[serde(skip)]
    pub model: ModelId,
    /// Sorted by conversions, descending (then by name).
    pub channels: Vec<ChannelCredit>,
    pub total_conversions: f64,
    pub total_value: f64,
    /// True when the credits sum to the attributed conversions and value within
    /// [`CONSERVATION_TOLERANCE`] (relative); `participation` exceeds them by design.
    pub conserves_totals: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_probability: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ChannelCredit {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    /// This channel's part of the model's credited conversions (0..1).
    pub share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_effect: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_effect_value: Option<f64>,
}

impl AttributionResult {
    pub fn model(&self, model: ModelId) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.model == model)
    }
}

impl ModelResult {
    pub fn channel(&self, name: &str) -> Option<&ChannelCredit> {
        self.channels.iter().find(|c| c.channel == name)
    }
}

fn models_as_map<S: Serializer>(models: &[ModelResult], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(models.len()))?;
    for model in models {
        map.serialize_entry(model.model.as_str(), model)?;
    }
    map.end()
}

impl Partial {
    /// Computes the final result (solving the Markov chain if asked). It lives here, with
    /// the result's construction, so that `partial.rs` does not depend on the result.
    pub fn finish(&self, options: &Options) -> Result<AttributionResult, AttributionError> {
        build_result(self, options)
    }
}

pub(crate) fn build_result(partial: &Partial, options: &Options) -> Result<AttributionResult, AttributionError> {
    let counts = &partial.counts;
    let summary = Summary {
        rows: counts.rows,
        journeys: counts.converting_journeys + counts.null_journeys,
        converting_journeys: counts.converting_journeys,
        null_journeys: counts.null_journeys,
        conversions: counts.conversions,
        conversion_value: counts.conversion_value,
        unattributed_conversions: counts.unattributed_conversions,
        unattributed_value: counts.unattributed_value,
        channels: partial.channel_seen.iter().filter(|&&seen| seen).count(),
        truncated_journeys: counts.truncated_journeys,
    };
    let attributed =
        (counts.conversions - counts.unattributed_conversions, counts.conversion_value - counts.unattributed_value);
    let seen: Vec<usize> = (0..partial.channels.len()).filter(|&c| partial.channel_seen[c]).collect();

    let mut models = Vec::with_capacity(options.models.len());
    for &model in &options.models {
        let result = if model == ModelId::Markov {
            let markov = partial.markov.as_ref().expect("a partial for markov carries markov counts");
            let solution = markov.solve(partial.channels.len())?;
            let mut result = model_result(model, partial, &seen, &solution.conversions, &solution.value, attributed);
            let ids: rustc_hash::FxHashMap<&str, usize> =
                partial.channels.iter().enumerate().map(|(id, name)| (name.as_str(), id)).collect();
            for credit in &mut result.channels {
                let id = ids[credit.channel.as_str()];
                credit.removal_effect = Some(solution.removal_effect[id]);
                credit.removal_effect_value = Some(solution.removal_effect_value[id]);
            }
            result.order = Some(markov.order);
            result.conversion_probability = Some(solution.conversion_probability);
            result
        } else {
            let rule = partial.rules.iter().find(|r| r.model == model).expect("a partial carries every rule model");
            model_result(model, partial, &seen, &rule.conversions, &rule.value, attributed)
        };
        models.push(result);
    }
    Ok(AttributionResult { summary, options: options.clone(), models })
}

fn model_result(
    model: ModelId,
    partial: &Partial,
    seen: &[usize],
    conversions: &[f64],
    value: &[f64],
    attributed: (f64, f64),
) -> ModelResult {
    let total_conversions: f64 = seen.iter().map(|&c| conversions[c]).sum();
    let total_value: f64 = seen.iter().map(|&c| value[c]).sum();
    let mut channels: Vec<ChannelCredit> = seen
        .iter()
        .map(|&c| ChannelCredit {
            channel: partial.channels[c].clone(),
            conversions: conversions[c],
            value: value[c],
            share: if total_conversions > 0.0 { conversions[c] / total_conversions } else { 0.0 },
            removal_effect: None,
            removal_effect_value: None,
        })
        .collect();
    channels.sort_by(|a, b| b.conversions.total_cmp(&a.conversions).then_with(|| a.channel.cmp(&b.channel)));
    let conserves_totals = close(total_conversions, attributed.0) && close(total_value, attributed.1);
    let note = (model == ModelId::Participation).then_some(
        "every distinct channel of a converting journey gets full credit, so totals exceed conversions by design",
    );
    ModelResult {
        model,
        channels,
        total_conversions,
        total_value,
        conserves_totals,
        note,
        order: None,
        conversion_probability: None,
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= CONSERVATION_TOLERANCE * want.abs().max(1.0)
}
