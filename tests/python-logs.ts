// The keys of a training log line, in order, as transformers' Trainer and TRL's SFTTrainer write
// them into log_history: the Trainer's loss, grad_norm and learning_rate, TRL's metrics, then the
// epoch and step the Trainer adds.
export const TRAIN_LOG_KEYS = [
  'loss',
  'grad_norm',
  'learning_rate',
  'entropy',
  'num_tokens',
  'mean_token_accuracy',
  'epoch',
  'step',
];
