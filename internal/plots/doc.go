// Package plots draws capsel's figures as PNG files with gonum/plot.
package plots
