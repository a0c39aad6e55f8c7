// Command selector measures how much a base model already knows about its
// fine-tuning targets and recommends the training objective to fine-tune it
// with. Run "selector help" for the list of subcommands.
package main
