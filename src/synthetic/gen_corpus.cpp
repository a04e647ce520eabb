// The English text the generated tokenizer learns its merges from (synthetic/gen_tokenizer.h).
// Original prose; plain ASCII so the pre-tokenizer for learning can stay simple.
#include <string_view>

#include "synthetic/gen_tokenizer.h"

namespace dsinfer {

std::string_view gen_tokenizer_corpus() {
  static constexpr std::string_view kText = R"corpus(The Lighthouse on the Northern Shore

There was once a small town at the edge of the sea, and at the end of its long stone pier stood a lighthouse. The keeper of the light was an old woman named Margaret. Every evening she climbed the one hundred and twelve steps to the lamp room, cleaned the glass, trimmed the wick, and watched the water until the morning came.

People in the town often asked her why she stayed. "The ships have their own lights now," they said. "They have maps and radios and machines that know where the rocks are." Margaret would smile and answer that a machine can fail, and that a light in the dark is a kind of promise. Then she would go back to her work, because the work was the reason she was there.

In the spring of 1987 a young man came to the town. His name was Daniel, and he had studied the stars at a university far away. He wanted to measure how the light from the tower moved across the water, and he asked Margaret if he could stay for a few weeks. She said yes, on one condition: he would have to help with the steps, the glass and the wick.

So they worked together. In the morning Daniel wrote numbers in a notebook: the time, the wind, the height of the waves, the distance to the first boat. In the evening he climbed the stairs with her and held the lamp while she cleaned it. He learned that the glass must be cleaned from the top down, that the wick burns better when it is cut straight, and that the sea is never the same twice.

"Why do you write everything down?" Margaret asked him one night.

"Because I want to understand it," Daniel said. "If I can find the pattern, I can predict what the sea will do tomorrow."

"And if there is no pattern?"

"Then I will have learned something anyway. A question is still useful when the answer is no."

She thought about that for a long time. Then she told him about the storm of 1961, when the waves came over the top of the pier and the light was the only thing that could be seen for miles. Three boats came home that night because they could see the tower. She had never written any of it down, but she remembered every detail: the sound of the wind, the cold of the glass, the weight of the door when she pushed it open against the rain.

Daniel wrote her story in his notebook, on a page of its own.

How to Make Bread

Making bread at home is simple, but it takes time. You will need flour, water, salt and yeast. First, mix 500 grams of flour with 10 grams of salt in a large bowl. In a second bowl, mix 350 grams of warm water with 5 grams of yeast, and wait for ten minutes until the water looks cloudy. Then pour the water into the flour and stir until there is no dry flour left.

Cover the bowl and let the dough rest for one hour. After that, fold the dough over itself a few times with wet hands. Repeat this every 30 minutes, three or four times. The dough will become smooth and strong. When it has doubled in size, shape it into a ball and place it on a tray. Bake it in a hot oven, at 230 degrees, for about 40 minutes, until the crust is dark and the bottom sounds hollow when you knock on it.

Let the bread cool before you cut it. This is the hardest part of the whole process, because the kitchen will smell wonderful and you will want to eat it at once. But the inside is still cooking while it cools, and if you cut it too early it will be wet and heavy.

A Conversation About Learning

Student: I have been reading about how computers learn to write. Is it true that they only predict the next word?

Teacher: In a sense, yes. A language model reads a sequence of tokens and gives a probability for every possible next token. Then it picks one, adds it to the sequence, and does the same thing again.

Student: That sounds too simple to work.

Teacher: The idea is simple, but the model is large. It has many layers, and each layer changes the representation of every token a little. Some layers look at the other tokens in the sequence; this part is called attention. Other layers work on each token alone. After enough layers, the representation of the last token holds what the model needs to make a good guess.

Student: And what is a token? Is it a word?

Teacher: Sometimes. A tokenizer cuts the text into pieces. Common words like "the" or "and" are usually one token, but a rare word may be split into several pieces. The tokenizer learns which pieces to keep by counting which pairs of characters appear together most often in a large amount of text. It merges the most frequent pair, counts again, and repeats this until it has enough pieces.

Student: So a short text would give a small vocabulary.

Teacher: Exactly. The size of the vocabulary is a choice. A larger one makes the sequences shorter, but the model must learn more embeddings. There is always a trade between the two.

Student: What about attention? If every token looks at every other token, does it not become slow for long texts?

Teacher: It does. The cost grows with the square of the length. That is why some newer models first use a small and fast index to choose which earlier tokens matter most, and then attend only to those. If the index is good, the answer is almost the same, and the work is much smaller.

Student: Thank you. I think I understand it a little better now.

Teacher: Good. Try to explain it to someone else tomorrow; that is the best test of whether you have learned something.

Notes on the Weather

Monday was cold and clear, with a light wind from the north. Tuesday brought clouds in the afternoon and a little rain in the evening. On Wednesday the rain was heavy, and the river near the old mill rose by almost two feet. Thursday was quiet and grey. By Friday the sun had come back, the roads were dry again, and the children were playing in the park until it was time to go home.

The forecast for the weekend is warm and bright, with a chance of storms late on Sunday. Farmers in the valley hope for rain, because the fields are still too dry for the time of year. If the storms come, they will be short but strong, so people should keep their windows closed and stay away from the trees near the water.

A Short List of Good Habits

1. Drink a glass of water when you wake up.
2. Walk for at least twenty minutes every day.
3. Read something that is not on a screen.
4. Write down three things that went well.
5. Go to bed at the same time each night.

None of these habits is hard on its own. What is hard is doing them every day, even when you are tired or busy. The trick is to start small: choose one habit, do it for a week, and only then add another. After a month you may find that the new habits have become a part of your life, and that you no longer have to think about them at all.

The End of the Season

When the summer ended, Daniel packed his notebooks and said goodbye. He promised to write, and he did: every month a letter came to the lighthouse, full of numbers, drawings and questions. Margaret answered each one by hand. She told him about the weather, the boats, the birds on the rocks, and the new glass that the town had finally paid for. Years later, when Daniel wrote a book about the light and the sea, the first page said only this: "For Margaret, who kept the light, and who taught me that the best questions are the ones you ask every night."
)corpus";
  return kText;
}

}  // namespace dsinfer
