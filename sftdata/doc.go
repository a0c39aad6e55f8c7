// Package sftdata reads supervised fine-tuning data: the one reader of SFT
// files for the whole project (the trainer, the evaluator and the probe).
//
// A file is JSONL when its first non-blank line starts with '{' (after an
// optional UTF-8 byte-order mark); each line then holds one of
//
//	{"prompt": "...", "response": "..."}            prompt and response
//	{"prompt": "...", "completion": "..."}          TRL's prompt-completion
//	{"prompt": [turns], "completion": [one turn]}   TRL's conversational form
//	{"messages": [{"role": ..., "content": ...}]}  a chat: the last turn, an
//	                                                assistant's, is the response
//	{"text": "..."}                                 a pretraining document
//
// and other fields are ignored. Any other file is plain text, one
// pretraining document per non-blank line. Every error names the file and
// line.
//
// A chat's earlier turns are its context. Inference servers render it with
// the model's own chat template; the project's own character-level models
// read it as ChatTemplate describes (RenderChat), in training and in the
// probe alike.
package sftdata
