package selector

import (
	"fmt"

	"github.com/capsel/capsel/probe"
)

// FromReport gathers a probe report's evidence.
func FromReport(rep *probe.Report) Evidence {
	pl := rep.Placement
	ev := Evidence{
		MeanP: rep.MeanP, MeanPCI: rep.MeanPCI, ShareGT055: rep.ShareGT055,
		Tokens: int(rep.Tokens), Sequences: int(rep.Sequences), Region: string(rep.Region),
		WeakBelow: pl.Cuts.WeakBelow, StrongAt: pl.Cuts.StrongAt,
		Contexts: rep.Contexts(), CIDefined: rep.MeanPCIDefined,
	}
	if a := pl.NearestAnchor; a.Model != "" {
		ev.Anchor = fmt.Sprintf("%s on %s (mean p %.2f, %s; the paper's Table 5)", a.Model, a.Domain, a.MeanP, a.Region)
	}
	if rep.NoiseAware != nil {
		ev.NoiseAware = rep.NoiseAware.Result
	}
	for _, c := range ev.Contexts {
		if c.Bucket {
			ev.TopK = true
			break
		}
	}
	return ev
}
