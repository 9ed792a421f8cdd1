//! Per-journey credits (the `export_credits` option): for each converting journey, the
//! conversions and value each model gives each of its channels. Rule models split the
//! journey by their touch weights; `markov` splits it over the journey's distinct channels
//! in proportion to their removal effects (the global Markov credit is normalised over all
//! journeys instead, so these rows need not add up to it; every journey's rows do add up
//! to its own conversions and value). `shao_li` splits a journey the same way in proportion
//! to its channels' credit under the model.

use crate::journey::Journey;
use crate::options::{ModelId, Options};
use crate::result::AttributionResult;
use crate::rules::touch_weights;

/// One exported row: a journey's credit to one channel under one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JourneyCredit {
    pub model: ModelId,
    pub channel: u32,
    pub conversions: f64,
    pub value: f64,
}

/// Computes credit rows for journeys whose channel ids index `channels`.
pub struct CreditSplitter {
    models: Vec<ModelId>,
    is_direct: Vec<bool>,
    /// Removal effects by channel id (conversions, value) when markov is among the models.
    markov_effects: Option<Vec<(f64, f64)>>,
    /// Channel credits by channel id (conversions, value) when shao_li is among the models.
    shao_li_credits: Option<Vec<(f64, f64)>>,
    weights: Vec<f64>,
    per_channel: Vec<(u32, f64)>,
}

impl CreditSplitter {
    /// `result` supplies the Markov removal effects, matched to `channels` by name.
    pub fn new(options: &Options, channels: &[String], result: &AttributionResult) -> CreditSplitter {
        let markov_effects = result.model(ModelId::Markov).map(|markov| {
            channels
                .iter()
                .map(|name| {
                    markov.channel(name).map_or((0.0, 0.0), |c| {
                        (c.removal_effect.unwrap_or(0.0), c.removal_effect_value.unwrap_or(0.0))
                    })
                })
                .collect()
        });
        let shao_li_credits = result.model(ModelId::ShaoLi).map(|shao_li| {
            channels.iter().map(|name| shao_li.channel(name).map_or((0.0, 0.0), |c| (c.conversions, c.value))).collect()
        });
        CreditSplitter {
            models: options.models.clone(),
            is_direct: channels.iter().map(|c| options.is_direct(c)).collect(),
            markov_effects,
            shao_li_credits,
            weights: Vec::new(),
            per_channel: Vec::new(),
        }
    }

    /// Appends the journey's rows to `out` (nothing for a non-converting or untouched journey).
    pub fn split(&mut self, journey: &Journey<'_>, options: &Options, out: &mut Vec<JourneyCredit>) {
        if !journey.is_converting() || journey.channels.is_empty() {
            return;
        }
        for index in 0..self.models.len() {
            let model = self.models[index];
            self.per_channel.clear();
            if model == ModelId::Markov || model == ModelId::ShaoLi {
                self.proportional_split(model, journey, out);
                continue;
            }
            touch_weights(model, journey, options, &self.is_direct, &mut self.weights);
            for (&channel, &weight) in journey.channels.iter().zip(&self.weights) {
                add_to(&mut self.per_channel, channel, weight);
            }
            for &(channel, weight) in &self.per_channel {
                if weight > 0.0 {
                    out.push(JourneyCredit {
                        model,
                        channel,
                        conversions: weight * journey.conversions,
                        value: weight * journey.value,
                    });
                }
            }
        }
    }

    /// The journey over its distinct channels in proportion to their markov removal effects
    /// or shao_li credits (equally when those are all 0).
    fn proportional_split(&mut self, model: ModelId, journey: &Journey<'_>, out: &mut Vec<JourneyCredit>) {
        let effects = match model {
            ModelId::Markov => self.markov_effects.as_deref(),
            _ => self.shao_li_credits.as_deref(),
        };
        let effects = effects.unwrap_or_default();
        for &channel in journey.channels {
            add_to(&mut self.per_channel, channel, 0.0);
        }
        let effect = |channel: u32| effects.get(channel as usize).copied().unwrap_or((0.0, 0.0));
        let (sum_conv, sum_value) =
            self.per_channel.iter().fold((0.0, 0.0), |(a, b), &(c, _)| (a + effect(c).0, b + effect(c).1));
        let distinct = self.per_channel.len() as f64;
        for &(channel, _) in &self.per_channel {
            let (re, re_value) = effect(channel);
            let conv_share = if sum_conv > 0.0 { re / sum_conv } else { 1.0 / distinct };
            let value_share = if sum_value > 0.0 { re_value / sum_value } else { 1.0 / distinct };
            out.push(JourneyCredit {
                model,
                channel,
                conversions: conv_share * journey.conversions,
                value: value_share * journey.value,
            });
        }
    }
}

fn add_to(per_channel: &mut Vec<(u32, f64)>, channel: u32, weight: f64) {
    match per_channel.iter_mut().find(|(c, _)| *c == channel) {
        Some((_, w)) => *w += weight,
        None => per_channel.push((channel, weight)),
    }
}
