// Package continuum holds the capability continuum of Li et al., "Beyond
// Log Likelihood" (ICML 2026): its three regions, the paper's twelve anchor
// measurements, and the cut points that place a mean p in a region.
//
// It is the one source of these numbers and names for the probe, the
// selector and the trainer, and imports nothing of the project.
package continuum
