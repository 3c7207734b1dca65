"""Pure layer math: plain functions of arrays, usable without Flax or the engine.

    from dlnotes.nn import group_norm, conv2d, dropout
"""
from dlnotes.nn.attention import (attention_weights, causal_mask, combine_masks, dot_product_attention,
                                  hard_lookup, lookup_gap, padding_mask, soft_lookup)
from dlnotes.nn.conv import (conv1d, conv2d, conv_output_size, depthwise_conv2d, num_conv_params,
                             receptive_field)
from dlnotes.nn.graph import (AGGREGATORS, GraphsTuple, aggregate, cluster_pool, gcn_normalize, gcn_propagate,
                              masked_batch_norm, message_passing, pad_to, readout, segment_softmax,
                              soft_cluster_pool)
from dlnotes.nn.init import (bias_init, he_normal, he_uniform, lecun_normal, lecun_uniform, weight_init,
                             xavier_normal, xavier_uniform)
from dlnotes.nn.norm import batch_norm, group_norm, instance_norm, layer_norm, rms_norm, weight_standardize
from dlnotes.nn.posenc import add_positions, concat_positions, rope, rotation, sinusoidal
from dlnotes.nn.pool import avg_pool, max_pool, pick_pool, subsample, weighted_pool
from dlnotes.nn.recurrent import (bidirectional, fir_filter, gru_cell, iir_filter, impulse_response, lstm_cell,
                                  rnn_cell, scan_cell, stacked, state_jacobian_norms)
from dlnotes.nn.regularize import dropout, stochastic_depth

__all__ = [
    "conv1d", "conv2d", "conv_output_size", "depthwise_conv2d", "num_conv_params", "receptive_field",
    "bias_init", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "weight_init",
    "xavier_normal", "xavier_uniform",
    "batch_norm", "group_norm", "instance_norm", "layer_norm", "rms_norm", "weight_standardize",
    "avg_pool", "max_pool", "pick_pool", "subsample", "weighted_pool",
    "bidirectional", "fir_filter", "gru_cell", "iir_filter", "impulse_response", "lstm_cell", "rnn_cell",
    "scan_cell", "stacked", "state_jacobian_norms",
    "dropout", "stochastic_depth",
    "attention_weights", "causal_mask", "combine_masks", "dot_product_attention", "hard_lookup", "lookup_gap",
    "padding_mask", "soft_lookup", "add_positions", "concat_positions", "rope", "rotation", "sinusoidal",
    "AGGREGATORS", "GraphsTuple", "aggregate", "cluster_pool", "gcn_normalize", "gcn_propagate", "masked_batch_norm",
    "message_passing", "pad_to", "readout", "segment_softmax", "soft_cluster_pool",
]
