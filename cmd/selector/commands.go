package main

// commands lists the subcommands in the order "selector help" shows them.
func commands() []*command {
	return []*command{cmdRecommend, cmdProbe, cmdObjectives, cmdTheory, cmdTrain, cmdEval, cmdBench, cmdExperiment}
}

// notYet is the body of a subcommand whose issue has not landed: it says
// what the command will do and fails.
func notYet(c *command) func(*env, []string) error {
	return func(e *env, args []string) error {
		for _, a := range args {
			if a == "-h" || a == "--help" || a == "-help" {
				e.stdout.Write([]byte("usage: " + c.usage + "\n\n" + c.long + "\n"))
				return errHelpShown
			}
		}
		e.stderr.Write([]byte("selector " + c.name + " will " + c.short + ".\n"))
		return errNotYetFor(c.name)
	}
}

func errNotYetFor(name string) error { return &notYetError{name} }

type notYetError struct{ name string }

func (n *notYetError) Error() string { return n.name + ": " + errNotYet.Error() }
func (n *notYetError) Unwrap() error { return errNotYet }
